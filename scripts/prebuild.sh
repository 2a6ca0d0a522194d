#!/usr/bin/env bash
# Writes prebuilds/<platform>-<arch>/finetorch.libtorch-<major.minor>.node and the
# finetorch_preload.node beside it: prebuildify's folder layout, with the libtorch version the
# addon was built against in its name, so that several may ship and the loader
# (binding/libtorch.ts) picks the one matching the libtorch it finds (LIBTORCH, a Python torch, the
# system). prebuildify itself only drives node-gyp (prebuildify#49), so cmake-js builds and this
# script places the result. The prebuilt carries no RPATH: the loader opens libtorch itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
platform=$(node -p 'process.platform + "-" + process.arch')
npx cmake-js build --out build --log-level warn
# the version of the libtorch this build linked (the libtorch it loads through its build RPATH)
version=$(node -e 'const a = require("./build/Release/finetorch.node"); console.log(a.info().torchVersion.split(".").slice(0, 2).join("."))')
out="prebuilds/$platform"
mkdir -p "$out"
rm -f "$out"/finetorch*.node
addon="$out/finetorch.libtorch-$version.node"
cp build/Release/finetorch.node "$addon"
cp build/Release/finetorch_preload.node "$out/finetorch_preload.node"
strip --strip-unneeded "$addon" "$out/finetorch_preload.node" 2>/dev/null || true
if command -v patchelf >/dev/null 2>&1; then
  patchelf --remove-rpath "$addon"
else
  echo "prebuild: patchelf not found (apt-get install patchelf): $addon keeps the build machine's RPATH" >&2
fi
echo "wrote $addon ($(du -k "$addon" | cut -f1) KiB) and $out/finetorch_preload.node"
