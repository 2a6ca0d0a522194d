// `finetorch doctor`: what the runtime sees (libtorch, BLAS, threads, CPU, CUDA, malloc, sharp,
// the weights cache) and a fix for each problem.
import { diagnose, type Finding } from './diagnose';
import { gatherFacts, type DoctorFacts, type GatherOptions } from './facts';

export { diagnose, type Finding, type FindingStatus } from './diagnose';
export { gatherFacts, WATCHED_ENV, type DoctorFacts, type GatherOptions, type WeightsFileFact } from './facts';
export { formatFindings } from './format';
export { cgroupCpuLimit, cpuFeatures, parseCpuInfo, CPU_FEATURES, type CpuFeature, type CpuInfo } from './cpu';
export {
  blasInUse, classifyBlas, cudaLibraries, libtorchFiles, mappedLibraries, replacementAllocator, versionFromFileName, BLAS_NAMES,
  type BlasInUse, type BlasKind, type CudaLibraries, type LibtorchFiles,
} from './libraries';

export interface DoctorReport {
  /** Findings with status 'problem': `finetorch doctor` exits 1 when there is any. */
  problems: number;
  warnings: number;
  findings: Finding[];
  facts: DoctorFacts;
}

/** Looks at this process's runtime and judges it. */
export async function runDoctor(options: GatherOptions = {}): Promise<DoctorReport> {
  const facts = await gatherFacts(options);
  const findings = diagnose(facts);
  return {
    problems: findings.filter((f) => f.status === 'problem').length,
    warnings: findings.filter((f) => f.status === 'warn').length,
    findings,
    facts,
  };
}
