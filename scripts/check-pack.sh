#!/usr/bin/env bash
# Shows that the npm tarball carries a prebuilt addon that loads where it is installed, with no
# cmake or compiler run: pack, install into an empty folder, load, run a native op.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
bash scripts/prebuild.sh >/dev/null
tarball=$(npm pack --silent | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work" "$root/$tarball"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error --omit=dev "$root/$tarball"
# a PATH without cmake or a compiler: loading must not need them
mkdir bin && ln -s "$(command -v node)" bin/node
PATH="$work/bin" node -e '
  const ft = require("finetorch");
  const { candidatePaths } = require("finetorch/dist/binding");
  const t = ft.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  ft.matmul(t, t).then((r) => {
    const loaded = candidatePaths().find((p) => require("fs").existsSync(p));
    if (!loaded.includes("prebuilds")) throw new Error("loaded " + loaded + ", not the prebuilt");
    if (String(r.toArray()) !== "7,10,15,22") throw new Error("wrong product " + r.toArray());
    console.log(`check-pack: installed ${process.argv[1]} loads ${loaded.replace(process.cwd() + "/", "")} (libtorch ${ft.runtimeInfo().torchVersion}); no build ran`);
  });' "$tarball"
ls node_modules/finetorch/build >/dev/null 2>&1 && { echo "check-pack: unexpected build/ folder in the install"; exit 1; }
exit 0
