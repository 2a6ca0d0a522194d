#!/usr/bin/env bash
# Builds the pickle reader/writer self-test with ASan+UBSan (no torch headers), writes fixtures
# with Debian's python3-torch, runs the self-test on them, then has torch.load the pickles the
# self-test wrote. Everything happens in a temp dir that is removed afterwards.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../.." && pwd)
python=/usr/bin/python3  # Debian's python3-torch 1.13 + torchvision, not the pyenv python on PATH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== build (g++ -std=c++17 -O1 -fsanitize=address,undefined)"
g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Werror -I"$native" \
  "$native/formats/pickle_reader.cc" "$native/formats/legacy_reader.cc" "$native/formats/pickle_writer.cc" \
  "$here/formats_selftest.cc" \
  -o "$work/formats_selftest"

echo "== fixtures"
"$python" "$here/make_fixtures.py" "$work/fixtures"

echo "== self-test"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$work/formats_selftest" "$work/fixtures" "$work/roundtrip"

echo "== torch.load of pickle() output"
"$python" "$here/make_fixtures.py" --check-roundtrip "$work/roundtrip"
echo "== all passed"
