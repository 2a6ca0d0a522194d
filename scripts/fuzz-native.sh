#!/usr/bin/env bash
# Coverage-guided fuzzing of the restricted unpickler (native/formats/pickle_reader.cc) with
# libFuzzer, under ASan + UBSan. The target (native/formats/fuzz/pickle_fuzzer.cc) is the formats
# self-test's checkOneInput(): unpickle() and readLegacy() must parse or throw FormatError, and what
# parses must survive pickle() -> unpickle().
#
#   scripts/fuzz-native.sh [SECONDS] [extra libFuzzer flags...]     (default 120 seconds)
#
# Environment:
#   FUZZ_WORK=DIR      keep the build, corpus and crash artifacts there (default: a new temp dir,
#                      printed at the end and kept, so a finding can be replayed)
#   FUZZ_JOBS=N        parallel fuzzing processes (default 1; -fork=N)
#   FUZZ_COVERAGE=0    skip the source-based coverage report at the end
#   CXX_FUZZ=clang++   the clang to use (needs libclang-rt-14-dev or newer: apt-get install -y clang libclang-rt-14-dev)
#
# Seed corpus: real torch.save files (legacy files whole, zip files' data.pkl) written by Debian's
# /usr/bin/python3 with python3-torch (scripts/fuzz-make-seeds.py), plus plain pickles of protocols
# 0-5; test/fuzz/seeds is used when that python has no torch. Replay one input:
#   $FUZZ_WORK/pickle_fuzzer $FUZZ_WORK/artifacts/crash-...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
seconds=${1:-120}
shift || true
say() { echo "[fuzz-native] $*" >&2; }

cxx=${CXX_FUZZ:-}
if [ -z "$cxx" ]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    command -v "$c" >/dev/null 2>&1 && { cxx=$c; break; }
  done
fi
[ -n "$cxx" ] || { say "no clang++ found: apt-get install -y clang libclang-rt-14-dev"; exit 2; }
llvm_suffix=$("$cxx" --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
profdata=$(command -v "llvm-profdata-$llvm_suffix" || command -v llvm-profdata || true)
llvmcov=$(command -v "llvm-cov-$llvm_suffix" || command -v llvm-cov || true)

work=${FUZZ_WORK:-$(mktemp -d /tmp/finetorch-libfuzzer-XXXXXX)}
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
srcs=("$root/native/formats/pickle_reader.cc" "$root/native/formats/pickle_writer.cc" "$root/native/formats/fuzz/pickle_fuzzer.cc")

say "build ($cxx -fsanitize=fuzzer,address,undefined)"
"$cxx" -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I"$root/native" "${srcs[@]}" -o "$work/pickle_fuzzer"

say "seed corpus"
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import torch' >/dev/null 2>&1; then
  "$py" "$root/scripts/fuzz-make-seeds.py" "$work/torch-seeds" >/dev/null
  seeddir=$work/torch-seeds
else
  say "no python3-torch at $py: using the committed test/fuzz/seeds"
  seeddir=$root/test/fuzz/seeds
fi
python_for_plain=$py; [ -x "$py" ] || python_for_plain=python3
"$python_for_plain" - "$seeddir" "$work/seeds" <<'PY'
import collections, os, pickle, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if member.endswith('/data.pkl'):
                    open(os.path.join(out, name + '.data.pkl'), 'wb').write(z.read(member))
    else:
        open(os.path.join(out, name), 'wb').write(open(path, 'rb').read())
shared = [1, 2]
plain = {'int': 1, 'neg': -7, 'big': 2**40, 'maxint': 2**63 - 1, 'minint': -2**63, 'float': 0.1,
         'str': 'r\u00e9snet \u2603 \U0001F600 \\ \n', 'bytes': b'\x00\xff\\', 'empty_bytes': b'',
         'list': [1, 2, [3]], 'tuple1': (1,), 'tuple2': (1, 2), 'tuple3': (1, 2, 3), 'tuple5': (1, 2, 3, 4, 5),
         'none': None, 't': True, 'f': False, 'od': collections.OrderedDict(z=1, y=[2]),
         'shared': [shared, shared], 'intkeys': {0: {'x': 1}, 300: 'y', -70000: 'z'}}
for protocol in range(6):
    open(os.path.join(out, 'plain-p%d.pkl' % protocol), 'wb').write(pickle.dumps(plain, protocol=protocol))
PY
say "$(ls "$work/seeds" | wc -l) seeds"

say "fuzzing for ${seconds}s (corpus $work/corpus)"
jobs=${FUZZ_JOBS:-1}
fork=()
[ "$jobs" -gt 1 ] && fork=(-fork="$jobs" -ignore_crashes=1)
set +e
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$work/pickle_fuzzer" "$work/corpus" "$work/seeds" -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -dict="$root/native/formats/fuzz/pickle.dict" \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 "${fork[@]}" "$@" 2>&1 | tee "$work/fuzz.log" | \
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE|pulse)' | awk '/INITED|DONE/ || NR % 4 == 0' >&2
rc=${PIPESTATUS[0]}
set -e
grep -E '^(stat::|Done |==[0-9]+==ERROR|SUMMARY)' "$work/fuzz.log" >&2 || true
findings=$(ls "$work/artifacts" | wc -l)
say "corpus: $(ls "$work/corpus" | wc -l) inputs; findings: $findings (in $work/artifacts)"

if [ "${FUZZ_COVERAGE:-1}" != 0 ] && [ -n "$profdata" ] && [ -n "$llvmcov" ]; then
  say "coverage of the corpus (source-based, llvm-cov)"
  "$cxx" -std=c++17 -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer -I"$root/native" \
    "${srcs[@]}" -o "$work/pickle_coverage"
  rm -f "$work"/cov-*.profraw
  LLVM_PROFILE_FILE="$work/cov-%p.profraw" "$work/pickle_coverage" -runs=0 "$work/corpus" "$work/seeds" >/dev/null 2>&1 || true
  "$profdata" merge -sparse "$work"/cov-*.profraw -o "$work/cov.profdata"
  "$llvmcov" report "$work/pickle_coverage" -instr-profile="$work/cov.profdata" \
    "$root/native/formats/pickle_reader.cc" "$root/native/formats/pickle_writer.cc" | tee "$work/coverage.txt" >&2
fi
say "work dir: $work"
if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
  say "FAILED: libFuzzer exit $rc, $findings artifact(s)"
  exit 1
fi
