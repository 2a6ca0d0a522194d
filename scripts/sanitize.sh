#!/usr/bin/env bash
# Memory-error checks of the native code:
#   1. formats   native/formats/test/run.sh: the pickle reader/writer self-test built with
#                g++ -fsanitize=address,undefined (needs Debian's /usr/bin/python3 with torch for fixtures)
#   2. asan      the addon built with -fsanitize=address into build/asan/ (build/ is git-ignored; the
#                normal build/Release is untouched), then, from a scratch copy of the package whose
#                build/Release/finetorch.node is the ASan build, with libasan preloaded into node:
#                  - test/fuzz/sanitize-smoke.ts: tensors, a forward pass, weights and checkpoints
#                    saved and loaded in every format, and a few hundred fuzz inputs per native-backed
#                    format loaded in-process
#                  - jest: test/models/weights.test.ts and test/tensor.test.ts (override: SANITIZE_TESTS)
#                LeakSanitizer runs with the smoke script and fails the step for leaks allocated through
#                the addon's code (node and libtorch keep some memory until exit by design); jest runs
#                with detect_leaks=0.
#   3. valgrind  (SANITIZE_VALGRIND=1, or when the ASan step cannot run) the smoke script under
#                valgrind memcheck against the normal build: errors in the addon's code fail the step
#
#   scripts/sanitize.sh [formats] [asan] [valgrind]     (default: formats asan)
#
# Environment: SANITIZE_SMOKE_INPUTS (fuzz inputs per format in the smoke run, default 200),
# SANITIZE_TESTS (jest test paths), SANITIZE_REBUILD=1 (rebuild build/asan even if present).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(formats asan)
[ "${SANITIZE_VALGRIND:-0}" = 1 ] && steps+=(valgrind)
inputs=${SANITIZE_SMOKE_INPUTS:-200}
tests=${SANITIZE_TESTS:-test/models/weights.test.ts test/tensor.test.ts}
say() { echo "[sanitize] $*" >&2; }
declare -A result

run_formats() {
  say "formats self-test (ASan + UBSan)"
  bash "$root/native/formats/test/run.sh"
}

scratch_package() {
  # A copy of the package whose addon is $1: the binding loads <package>/build/Release/finetorch.node.
  local addon=$1 dir
  dir=$(mktemp -d /tmp/finetorch-sanitize-pkg-XXXXXX)
  cp -r package.json tsconfig.json tsconfig.test.json jest.config.js lib binding scripts test configs "$dir"/
  ln -s "$root/node_modules" "$dir/node_modules"
  mkdir -p "$dir/build/Release"
  cp "$addon" "$dir/build/Release/finetorch.node"
  echo "$dir"
}

run_asan() {
  local libasan
  libasan=$(gcc -print-file-name=libasan.so)
  [ -f "$libasan" ] || { say "no libasan.so from gcc"; return 2; }
  if [ ! -f build/asan/Release/finetorch.node ] || [ "${SANITIZE_REBUILD:-0}" = 1 ]; then
    say "build the addon with -fsanitize=address into build/asan (several minutes)"
    # (cmake-js sets CMAKE_CXX_FLAGS itself, after --CD options: the flags go in the Release ones)
    npx cmake-js rebuild --out build/asan \
      --CDCMAKE_CXX_FLAGS_RELEASE="-O1 -g -fsanitize=address -fno-omit-frame-pointer" \
      --CDCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address" >&2 || return 1
  fi
  if ! nm -D build/asan/Release/finetorch.node | grep __asan_report >/dev/null; then
    say "build/asan/Release/finetorch.node is not instrumented (no __asan_report* calls): rebuild with SANITIZE_REBUILD=1"
    return 1
  fi
  local pkg rc=0
  pkg=$(scratch_package build/asan/Release/finetorch.node)
  # halt_on_error: the first report fails the step.
  export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
  say "smoke run under ASan + LeakSanitizer ($inputs fuzz inputs per format)"
  # Leaks are checked here (not under jest): only leaks allocated through the addon's code count,
  # node and libtorch keep some memory until exit by design.
  local log leaks
  log=$(mktemp /tmp/finetorch-asan-XXXXXX.log)
  (cd "$pkg" && LD_PRELOAD=$libasan ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=1:fast_unwind_on_malloc=0 LSAN_OPTIONS=exitcode=0 \
    node -r ./test/fuzz/ts-register.js test/fuzz/sanitize-smoke.ts "$inputs") 2> >(tee "$log" >&2) || rc=1
  leaks=$(awk '/^(Direct|Indirect) leak/ {block = $0; inside = 1; next}
               inside && /^$/ {if (block ~ /finetorch\.node|\/native\//) n++; inside = 0; next}
               inside {block = block "\n" $0}
               END {print n + 0}' "$log")
  say "LeakSanitizer: $(grep -cE '^(Direct|Indirect) leak' "$log") leak report(s), $leaks through the addon's code (log: $log)"
  [ "$leaks" -eq 0 ] || rc=1
  say "jest under ASan: $tests"
  # shellcheck disable=SC2086
  (cd "$pkg" && LD_PRELOAD=$libasan node node_modules/jest/bin/jest.js --runInBand $tests) || rc=1
  rm -rf "$pkg"
  return $rc
}

run_valgrind() {
  command -v valgrind >/dev/null 2>&1 || { say "valgrind is not installed (apt-get install -y valgrind)"; return 2; }
  [ -f build/Release/finetorch.node ] || { say "no build/Release/finetorch.node"; return 2; }
  local pkg rc=0 log
  pkg=$(scratch_package build/Release/finetorch.node)
  log=$(mktemp /tmp/finetorch-valgrind-XXXXXX.log)
  say "smoke run under valgrind memcheck (slow; log: $log)"
  # An error counts against the addon when one of its three innermost frames is in the addon. Errors
  # that only have the addon further up (it called libtorch, or dlopen loaded it) belong to glibc,
  # libcpuinfo, V8 or libtorch: memcheck reports a few of those in any node + libtorch process.
  (cd "$pkg" && valgrind --error-exitcode=0 --num-callers=30 --log-file="$log" \
      node -r ./test/fuzz/ts-register.js test/fuzz/sanitize-smoke.ts "${SANITIZE_VALGRIND_INPUTS:-20}") || rc=1
  local ours total
  total=$(grep -cE '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination)' "$log")
  ours=$(awk '/^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination)/ {inside = 1; frames = 0; hit = 0; next}
              inside && /^==[0-9]+== +(at|by) 0x/ {if (++frames <= 3 && /finetorch\.node/) hit = 1; next}
              inside {if (hit) n++; inside = 0}
              END {print n + 0}' "$log")
  say "valgrind: $total error context(s) reported, $ours in the addon's own code"
  grep -E "ERROR SUMMARY" "$log" | tail -1 >&2
  [ "$ours" -eq 0 ] || rc=1
  rm -rf "$pkg"
  return $rc
}

status=0
for step in "${steps[@]}"; do
  case "$step" in
    formats) run_formats; rc=$? ;;
    asan) run_asan; rc=$? ;;
    valgrind) run_valgrind; rc=$? ;;
    *) say "unknown step '$step' (formats, asan, valgrind)"; rc=2 ;;
  esac
  result[$step]=$rc
  if [ "$rc" -ne 0 ]; then status=1; fi
  if [ "$step" = asan ] && [ "$rc" -eq 2 ] && [[ ! " ${steps[*]} " =~ " valgrind " ]]; then
    say "ASan could not run: falling back to valgrind"
    run_valgrind; result[valgrind]=$?; [ "${result[valgrind]}" -eq 0 ] || status=1
  fi
done
for step in "${!result[@]}"; do say "$step: $([ "${result[$step]}" -eq 0 ] && echo PASSED || echo "FAILED (${result[$step]})")"; done
exit $status
