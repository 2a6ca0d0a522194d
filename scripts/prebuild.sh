#!/usr/bin/env bash
# Writes prebuilds/<platform>-<arch>/finetorch.node, the layout and name that
# `prebuildify --napi --name finetorch` produces and node-gyp-build loads. prebuildify itself only
# drives node-gyp (prebuildify#49), so cmake-js builds and this script places the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
platform=$(node -p 'process.platform + "-" + process.arch')
npx cmake-js build --out build --log-level warn
mkdir -p "prebuilds/$platform"
cp build/Release/finetorch.node "prebuilds/$platform/finetorch.node"
strip --strip-unneeded "prebuilds/$platform/finetorch.node" 2>/dev/null || true
echo "wrote prebuilds/$platform/finetorch.node ($(du -k "prebuilds/$platform/finetorch.node" | cut -f1) KiB)"
