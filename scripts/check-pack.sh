#!/usr/bin/env bash
# Shows that the npm tarball carries a prebuilt addon that loads where it is installed, with no
# cmake or compiler run: pack, install into an empty folder, load, run a native op. Then that the
# same install loads over a libtorch in another folder (LIBTORCH=<prefix>) while the system's
# libtorch is hidden from the dynamic linker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# prebuilds/ made here is removed again: left in a checkout, it would be loaded before build/
made_prebuilds=$([ -d prebuilds ] && echo no || echo yes)
bash scripts/prebuild.sh >/dev/null
tarball=$(npm pack --silent | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work" "$root/$tarball"; [ "$made_prebuilds" = yes ] && rm -rf "$root/prebuilds"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error --omit=dev "$root/$tarball"
# a PATH without cmake or a compiler: loading must not need them
mkdir bin && ln -s "$(command -v node)" bin/node
PATH="$work/bin" node -e '
  const ft = require("finetorch");
  const { loadedAddon } = require("finetorch/dist/binding");
  const t = ft.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  ft.matmul(t, t).then((r) => {
    const loaded = loadedAddon().file;
    if (!loaded.includes("prebuilds")) throw new Error("loaded " + loaded + ", not the prebuilt");
    if (String(r.toArray()) !== "7,10,15,22") throw new Error("wrong product " + r.toArray());
    console.log(`check-pack: installed ${process.argv[1]} loads ${loaded.replace(process.cwd() + "/", "")} (libtorch ${ft.runtimeInfo().torchVersion}); no build ran`);
  });' "$tarball"
ls node_modules/finetorch/build >/dev/null 2>&1 && { echo "check-pack: unexpected build/ folder in the install"; exit 1; }

# Install anywhere. The prebuilt has no RPATH; copy the libtorch it loaded to another prefix.
prebuilt=$(ls node_modules/finetorch/prebuilds/*/finetorch.libtorch-*.node)
readelf -d "$prebuilt" | grep -qE 'RPATH|RUNPATH' && { echo "check-pack: $prebuilt carries an RPATH"; exit 1; }
system_lib=$(node -e 'const b = require("finetorch/dist/binding"); b.native(); console.log(require("path").dirname(b.loadedLibtorchFile()))')
mkdir -p libtorch/lib
cp -P "$system_lib"/libc10.so* "$system_lib"/libtorch_cpu.so* "$system_lib"/libtorch.so* libtorch/lib/
cat > load.js <<'JS'
const ft = require("finetorch");
const { loadedAddon, loadedLibtorchFile } = require("finetorch/dist/binding");
ft.matmul(ft.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]), ft.tensor(new Float32Array([1, 0, 0, 1]), [2, 2])).then((r) => {
  if (String(r.toArray()) !== "1,2,3,4") throw new Error("wrong product " + r.toArray());
  const from = loadedLibtorchFile();
  if (!from.startsWith(process.env.LIBTORCH + "/")) throw new Error("libtorch_cpu came from " + from + ", not LIBTORCH=" + process.env.LIBTORCH);
  console.log(`check-pack: LIBTORCH=${process.env.LIBTORCH} loaded ${loadedAddon().file.replace(process.cwd() + "/", "")} over ${from}`);
});
JS
# hide the system's libtorch files (a private mount namespace: /dev/null bound over each, for this
# process tree only), then: without LIBTORCH nothing loads, with LIBTORCH=<prefix> it does
hidden=$(for f in "$system_lib"/libc10.so* "$system_lib"/libtorch_cpu.so* "$system_lib"/libtorch.so*; do [ -L "$f" ] || echo "$f"; done)
if [ "$(id -u)" = 0 ] && unshare --mount true 2>/dev/null; then
  unshare --mount env HIDDEN="$hidden" WORK="$work" sh -euc '
    for f in $HIDDEN; do mount --bind /dev/null "$f"; done
    if PATH="$WORK/bin" node -e "require(\"finetorch\").tensor(new Float32Array([1]), [1])" 2>"$WORK/hidden.err"; then
      echo "check-pack: loaded with the system libtorch hidden and no LIBTORCH"; exit 1
    fi
    grep -q "point LIBTORCH at another libtorch" "$WORK/hidden.err" || { cat "$WORK/hidden.err"; exit 1; }
    echo "check-pack: with the system libtorch hidden, the load fails and says: $(grep -m1 -A1 "finetorch.libtorch-.*: opening" "$WORK/hidden.err" | sed "s/^ *//" | tr "\n" " ")"
    LIBTORCH="$WORK/libtorch" PATH="$WORK/bin" node load.js'
else
  echo "check-pack: not root or no unshare: the system libtorch stays visible; checking LIBTORCH's copy is the one mapped"
  LIBTORCH="$work/libtorch" PATH="$work/bin" node load.js
fi
exit 0
