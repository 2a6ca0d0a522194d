#!/usr/bin/env bash
# One-command set-up, idempotent and quick when everything is there:
#   1. libtorch (Debian's libtorch-dev + OpenBLAS when run as root; otherwise says what to do)
#   2. npm packages (npm ci)
#   3. the native addon (unless a prebuilt or build that is newer than the sources already loads)
#   4. the TypeScript build (dist/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "[setup] $*" >&2; }

torch_python() {
  # the Python whose torch has a cmake config (pip torch); Debian's python3-torch has none
  for py in ${FINETORCH_PYTHON:-} python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    prefix=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || continue
    [ -f "$prefix/Torch/TorchConfig.cmake" ] && { echo "$prefix"; return 0; }
  done
  return 1
}

libtorch_found() {
  if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/share/cmake/Torch/TorchConfig.cmake" ] && return 0
    say "LIBTORCH=$LIBTORCH has no share/cmake/Torch/TorchConfig.cmake (expected an unpacked libtorch)"
    exit 1
  fi
  torch_python >/dev/null && return 0
  compgen -G "/usr/lib/*/cmake/Torch/TorchConfig.cmake" >/dev/null || compgen -G "/usr/local/lib/cmake/Torch/TorchConfig.cmake" >/dev/null
}

apt_install() {
  say "apt-get install -y $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

# 1. libtorch
if ! libtorch_found; then
  if can_apt; then
    apt_install libtorch-dev libopenblas0-pthread libgloo-dev libdnnl-dev cmake g++
  else
    cat >&2 <<'MSG'
[setup] libtorch was not found. Either:
  - on Debian/Ubuntu:  sudo apt-get install -y libtorch-dev libopenblas0-pthread libgloo-dev libdnnl-dev cmake g++
  - or download libtorch (https://pytorch.org, CPU or CUDA zip), unpack it and
      export LIBTORCH=/path/to/libtorch
  - or use a pip torch:  pip install torch  (found through torch.utils.cmake_prefix_path)
then run scripts/setup.sh again.
MSG
    exit 1
  fi
fi
# Debian's libtorch falls back to the reference BLAS, 2.5x slower for AlexNet's FC layers
if command -v dpkg >/dev/null 2>&1 && dpkg -s libtorch-dev >/dev/null 2>&1 &&
   ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  if can_apt; then apt_install libopenblas0-pthread; else say "tip: apt-get install libopenblas0-pthread (faster BLAS)"; fi
fi
# gloo's headers: libtorch's c10d needs them for distributed training (Debian's libtorch-dev has
# the library code but not these headers, nor does pip torch)
if command -v dpkg >/dev/null 2>&1 && dpkg -s libtorch-dev >/dev/null 2>&1 && ! dpkg -s libgloo-dev >/dev/null 2>&1; then
  if can_apt; then apt_install libgloo-dev; else say "tip: apt-get install libgloo-dev (distributed training: finetorch train --nproc-per-node)"; fi
fi
# oneDNN's headers: with them the addon calls the oneDNN Debian's libtorch links for Winograd
# training convolutions (conv_algorithm auto; ResNet-18 train step x1.4 on an AVX-512 CPU)
if command -v dpkg >/dev/null 2>&1 && dpkg -s libtorch-dev >/dev/null 2>&1 && ! dpkg -s libdnnl-dev >/dev/null 2>&1; then
  if can_apt; then apt_install libdnnl-dev; else say "tip: apt-get install libdnnl-dev (Winograd training convolutions), then npm run build:native"; fi
fi
for tool in cmake c++; do
  if ! command -v $tool >/dev/null 2>&1; then
    if can_apt; then apt_install cmake g++; else say "$tool is missing: install cmake and g++"; exit 1; fi
  fi
done

# 2. npm packages
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  # onnxruntime-node (dev: the ONNX export tests) carries its CPU runtime; its install script would
  # also fetch CUDA binaries from nuget.org, which an offline or CPU-only machine does not need
  ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL:-skip} npm ci --no-audit --no-fund --loglevel=error
fi

# 3. the native addon
newest_source=$(find native CMakeLists.txt -type f -printf '%T@\n' 2>/dev/null | sort -n | tail -1)
addon_loads() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = path.join("prebuilds", `${process.platform}-${process.arch}`);
    const files = (fs.existsSync(dir) ? fs.readdirSync(dir).filter(f => /^finetorch(\.libtorch-\d+\.\d+)?\.node$/.test(f)).map(f => path.join(dir, f)) : [])
      .concat([path.join("build", "Release", "finetorch.node")]).filter(f => fs.existsSync(f));
    const newest = Number(process.argv[1] || 0);
    for (const f of files) {
      if (newest && fs.statSync(f).mtimeMs / 1000 < newest) continue;  // older than the sources
      try { require(path.resolve(f)); process.exit(0); } catch (e) { console.error(`[setup] ${f}: ${e.message.split("\n")[0]}`); }
    }
    process.exit(1);' "${newest_source:-0}"
}
if ! addon_loads; then
  say "building the native addon (cmake-js)"
  start=$(date +%s)
  npx cmake-js build --out build --log-level warn 2>&1 | grep -vE '^\s*$' | tail -20 >&2 || true
  [ -f build/Release/finetorch.node ] && addon_loads || { say "native build failed (see above)"; exit 1; }
  say "built build/Release/finetorch.node in $(( $(date +%s) - start )) s ($(du -k build/Release/finetorch.node | cut -f1) KiB)"
fi

# 4. TypeScript
if [ -x node_modules/.bin/tsc ]; then
  newest_ts=$(find lib binding scripts -name '*.ts' -printf '%T@\n' | sort -n | tail -1)
  built_at=$(stat -c %Y dist/.built 2>/dev/null || echo 0)
  if [ ! -f dist/.built ] || awk -v a="$newest_ts" -v b="$built_at" 'BEGIN { exit !(a > b) }' || [ tsconfig.json -nt dist/.built ]; then
    say "compiling TypeScript"
    npx tsc -p tsconfig.json
    touch dist/.built
  fi
fi
