#!/bin/bash
# Data-parallel finetorch training on Slurm: one task per GPU, on 2 nodes of 4 GPUs (8 ranks).
# Submit from the checkout (built with `npm run compile`):  sbatch examples/distributed/sbatch.sh
#
# srun starts every task; each reads its rank from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and
# SLURM_NODEID, and rank r trains on cuda:LOCAL_RANK. No launcher of ours runs here: Slurm is it.
#SBATCH --job-name=finetorch-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4          # = GPUs per node: one process per GPU
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8            # data loading and the CPU side of each rank
#SBATCH --time=02:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

# rank 0 runs on the first node: every rank meets it there. A port of the job's own keeps two
# jobs that share a node from meeting each other (29500 is torchrun's default).
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))
# each rank's intra-op threads: its CPUs, not the whole node's
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK

echo "world size $SLURM_NTASKS, master $MASTER_ADDR:$MASTER_PORT"

# batch_size is per process: the global batch is 32 × 8 = 256 here. The learning rate is not
# scaled for you (see the README, "Several processes, GPUs or machines").
srun --kill-on-bad-exit=1 node dist/scripts/cli.js train \
  --config resnet18_finetune \
  --device cuda \
  --batch-size 32 \
  --data data/caltech101 \
  --out outputs
