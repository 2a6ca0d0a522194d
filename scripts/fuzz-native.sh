#!/usr/bin/env bash
# Coverage-guided fuzzing of the native parsers in native/formats/ with libFuzzer, under ASan + UBSan:
#   pickle  native/formats/fuzz/pickle_fuzzer.cc: the formats self-test's checkOneInput() over
#           unpickle() and readLegacy(): parse or throw FormatError, and what parses must survive
#           pickle() -> unpickle() unchanged
#   zip     native/formats/fuzz/zip_fuzzer.cc: checkZipArchive(), the zip directory check run before
#           libtorch's zip reader: throw FormatError, or return stored, in-file, disjoint entries
#
#   scripts/fuzz-native.sh [SECONDS] [extra libFuzzer flags...]    (default 120 seconds per target)
#
# Environment:
#   FUZZ_TARGETS="pickle zip"  which targets to run (each for SECONDS)
#   FUZZ_WORK=DIR      keep the builds, corpora and crash artifacts there (default: a new temp dir,
#                      printed at the end and kept, so that a finding can be replayed:
#                      $FUZZ_WORK/pickle_fuzzer $FUZZ_WORK/artifacts/pickle/crash-...)
#   FUZZ_JOBS=N        parallel fuzzing processes per target (default 1; libFuzzer -fork=N)
#   FUZZ_COVERAGE=0    skip the source-based coverage report (llvm-cov) at the end
#   CXX_FUZZ=clang++   the clang to use (Debian: apt-get install -y clang libclang-rt-14-dev)
#
# Seed corpus: real torch.save files written by Debian's /usr/bin/python3 with python3-torch
# (scripts/fuzz-make-seeds.py; test/fuzz/seeds when that python has no torch): legacy files whole,
# zip files whole for the zip target and their data.pkl for the pickle target; plus plain pickles of
# protocols 0-5 and a few crafted ones that reach the limits (memo DAGs, torch.Size, overflowing
# tensor extents, a module object). The torch.save seeds include whole pickled models. Exit status 1 when libFuzzer stops on a finding.
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
llvm_version=$("$cxx" --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
profdata=$(command -v "llvm-profdata-$llvm_version" || command -v llvm-profdata || true)
llvmcov=$(command -v "llvm-cov-$llvm_version" || command -v llvm-cov || true)

work=${FUZZ_WORK:-$(mktemp -d /tmp/finetorch-libfuzzer-XXXXXX)}
mkdir -p "$work"
targets=${FUZZ_TARGETS:-pickle zip}
formats=("$root/native/formats/pickle_reader.cc" "$root/native/formats/legacy_reader.cc" "$root/native/formats/pickle_writer.cc"
  "$root/native/formats/zip_reader.cc")

for t in $targets; do
  say "build $t ($cxx -fsanitize=fuzzer,address,undefined)"
  "$cxx" -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$root/native" "${formats[@]}" "$root/native/formats/fuzz/${t}_fuzzer.cc" \
    -o "$work/${t}_fuzzer"
  mkdir -p "$work/corpus/$t" "$work/seeds/$t" "$work/artifacts/$t"
done

say "seed corpus"
mkdir -p "$work/seeds/pickle" "$work/seeds/zip"
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import torch' >/dev/null 2>&1; then
  "$py" "$root/scripts/fuzz-make-seeds.py" "$work/torch-seeds" >/dev/null
  seeddir=$work/torch-seeds
else
  say "no python3-torch at $py: using the committed test/fuzz/seeds"
  seeddir=$root/test/fuzz/seeds
  [ -x "$py" ] || py=python3
fi
"$py" - "$seeddir" "$work/seeds" <<'PY'
import collections, os, pickle, struct, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
def put(target, name, data):
    with open(os.path.join(out, target, name), 'wb') as f:
        f.write(data)
for name in sorted(os.listdir(src)):
    data = open(os.path.join(src, name), 'rb').read()
    if zipfile.is_zipfile(os.path.join(src, name)):
        put('zip', name, data)
        with zipfile.ZipFile(os.path.join(src, name)) as z:
            for member in z.namelist():
                if member.endswith('/data.pkl'):
                    put('pickle', name + '.data.pkl', z.read(member))
    else:
        put('pickle', name, data)
shared = [1, 2]
plain = {'int': 1, 'neg': -7, 'big': 2**40, 'maxint': 2**63 - 1, 'minint': -2**63, 'float': 0.1,
         'str': 'r\u00e9snet \u2603 \U0001F600 \\ \n', 'bytes': b'\x00\xff\\', 'empty_bytes': b'',
         'list': [1, 2, [3]], 'tuple1': (1,), 'tuple2': (1, 2), 'tuple3': (1, 2, 3), 'tuple5': (1, 2, 3, 4, 5),
         'none': None, 't': True, 'f': False, 'od': collections.OrderedDict(z=1, y=[2]),
         'shared': [shared, shared], 'intkeys': {0: {'x': 1}, 300: 'y', -70000: 'z'}}
for protocol in range(6):
    put('pickle', 'plain-p%d.pkl' % protocol, pickle.dumps(plain, protocol=protocol))
# crafted: the limits and rarely used callables
def s(text):
    b = text.encode()
    return b'X' + struct.pack('<I', len(b)) + b
def i64(v):
    return b'\x8a\x08' + struct.pack('<q', v)
def tensor(key, numel, sizes, strides, storage=b'FloatStorage'):
    tup = lambda vs: b'(' + b''.join(i64(v) for v in vs) + b't'
    return (b'ctorch._utils\n_rebuild_tensor_v2\n((' + s('storage') + b'ctorch\n' + storage + b'\n' + s(key) + s('cpu') +
            i64(numel) + b'tQ' + i64(0) + tup(sizes) + tup(strides) + b'\x89ccollections\nOrderedDict\n)RtR')
dag = b'\x80\x02]q\x00' + b''.join(b'0(j' + struct.pack('<I', k) + b'j' + struct.pack('<I', k) + b'lr' + struct.pack('<I', k + 1) for k in range(30)) + b'.'
put('pickle', 'crafted-dag.pkl', dag)
put('pickle', 'crafted-size.pkl', b'\x80\x02ctorch\nSize\n((K\x02K\x03ttR.')
put('pickle', 'crafted-odict-pairs.pkl', b'\x80\x02ccollections\nOrderedDict\n(](' + s('a') + b'K\x01tatR.')
put('pickle', 'crafted-overflow.pkl', b'\x80\x02' + tensor('0', 4, [2**62, 4], [1, 2**62]) + b'.')
put('pickle', 'crafted-numel.pkl', b'\x80\x02' + tensor('0', 2**62, [1], [1], b'LongStorage') + b'.')
odict = b'ccollections\nOrderedDict\n)R'
put('pickle', 'crafted-module.pkl', b'\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81}(' + s('_parameters') + odict + b'(' +
    s('w') + tensor('0', 2, [2], [1]) + b'u' + s('_buffers') + odict + s('_modules') + odict + b'ub.')
put('pickle', 'crafted-param-state.pkl', b'\x80\x02ctorch._utils\n_rebuild_parameter_with_state\n(' + tensor('0', 1, [1], [1]) +
    b'\x88ccollections\nOrderedDict\n)R}tR.')
PY
say "$(ls "$work/seeds/pickle" | wc -l) pickle seeds, $(ls "$work/seeds/zip" | wc -l) zip seeds"

jobs=${FUZZ_JOBS:-1}
fork=()
[ "$jobs" -gt 1 ] && fork=(-fork="$jobs" -ignore_crashes=1)
status=0
for t in $targets; do
  say "fuzzing $t for ${seconds}s (corpus $work/corpus/$t)"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$work/${t}_fuzzer" "$work/corpus/$t" "$work/seeds/$t" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -dict="$root/native/formats/fuzz/$t.dict" \
    -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 "${fork[@]}" "$@" > "$work/fuzz-$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^(stat::|Done |==[0-9]+==ERROR|SUMMARY)' "$work/fuzz-$t.log" >&2 || true
  findings=$(ls "$work/artifacts/$t" | wc -l)
  say "$t: corpus $(ls "$work/corpus/$t" | wc -l) inputs; libFuzzer exit $rc; findings: $findings (in $work/artifacts/$t)"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then status=1; fi
done

if [ "${FUZZ_COVERAGE:-1}" != 0 ] && [ -n "$profdata" ] && [ -n "$llvmcov" ]; then
  say "line coverage of the corpora (source-based, llvm-cov)"
  for t in $targets; do
    "$cxx" -std=c++17 -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer -I"$root/native" \
      "${formats[@]}" "$root/native/formats/fuzz/${t}_fuzzer.cc" -o "$work/${t}_coverage"
    rm -f "$work"/cov-"$t"-*.profraw
    LLVM_PROFILE_FILE="$work/cov-$t-%p.profraw" "$work/${t}_coverage" -runs=0 "$work/corpus/$t" "$work/seeds/$t" >/dev/null 2>&1 || true
  done
  "$profdata" merge -sparse "$work"/cov-*.profraw -o "$work/cov.profdata"
  first=$(echo $targets | cut -d' ' -f1)
  objects=()
  sources=()
  for t in $targets; do
    [ "$t" = "$first" ] || objects+=(-object "$work/${t}_coverage")
    case "$t" in
      pickle) sources+=("$root/native/formats/pickle_reader.cc" "$root/native/formats/legacy_reader.cc"
                        "$root/native/formats/pickle_writer.cc") ;;
      zip) sources+=("$root/native/formats/zip_reader.cc") ;;
    esac
  done
  "$llvmcov" report "$work/${first}_coverage" "${objects[@]}" -instr-profile="$work/cov.profdata" "${sources[@]}" |
    tee "$work/coverage.txt" >&2
fi
say "work dir: $work"
[ "$status" -eq 0 ] || say "FAILED: see the artifacts above"
exit "$status"
