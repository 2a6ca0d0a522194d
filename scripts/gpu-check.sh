#!/usr/bin/env bash
# The GPU check, in two halves:
#   scripts/gpu-check.sh pack   here: compile the TypeScript, pack Node and the runtime node_modules
#                               into the ignored .device/ folder (carry it: the GPU machine has no
#                               Node and no network)
#   scripts/gpu-check.sh run    on the GPU machine: build the addon against its PyTorch
#                               (torch.utils.cmake_prefix_path), run the CUDA checks and the
#                               benchmark side by side with PyTorch (dist/scripts/gpu-check.js)
# With the device tool: run(command="bash scripts/gpu-check.sh run", carry=[".device"], timeout_s=540)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pack() {
  npx tsc -p tsconfig.json
  bash ../shared/device/pack-node.sh 2>/dev/null || bash "$(git rev-parse --show-toplevel)/../shared/device/pack-node.sh"
  # what dist/ needs at run time, and the headers the build needs (no cmake-js: plain cmake there)
  tar -cJf .device/runtime.tar.xz dist node_modules/node-addon-api node_modules/node-api-headers node_modules/yaml \
    node_modules/commander node_modules/sharp node_modules/@img node_modules/detect-libc node_modules/semver
  du -sh .device/*
}

run() {
  local started=$(date +%s)
  local bin; bin=$(mktemp -d)
  xz -dc .device/node.xz > "$bin/node" && chmod +x "$bin/node" && export PATH="$bin:$PATH"
  tar -xJf .device/runtime.tar.xz
  local python=${FINETORCH_PYTHON:-python3}
  local prefix; prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  echo "node $(node --version); torch $("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)'); cmake prefix $prefix"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  # the same CMakeLists.txt cmake-js drives, given what cmake-js would pass
  cmake -S . -B build-gpu $(command -v ninja >/dev/null && echo -G Ninja) -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include;$PWD/node_modules/node-addon-api" \
    -DCMAKE_JS_SRC= -DCMAKE_JS_LIB= -DCMAKE_CXX_FLAGS=-DBUILDING_NODE_EXTENSION > build-gpu.log 2>&1 \
    || { cp build-gpu.log "${OUT:-/tmp}/" || true; tail -40 build-gpu.log; exit 1; }
  # keep going past the first error: one device call should show them all
  cmake --build build-gpu -j "$(nproc)" -- $(command -v ninja >/dev/null && echo "-k 0" || echo -k) >> build-gpu.log 2>&1 || { cp build-gpu.log "${OUT:-/tmp}/" || true; grep -E -A3 "error" build-gpu.log | head -120; exit 1; }
  mkdir -p build/Release && cp build-gpu/finetorch.node build/Release/finetorch.node
  echo "built in $(( $(date +%s) - started )) s"
  [ -n "${OUT:-}" ] && cp build-gpu.log "$OUT/" || true
  node dist/scripts/gpu-check.js
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run" >&2; exit 2 ;;
esac
