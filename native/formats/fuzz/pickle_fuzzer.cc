// libFuzzer target over the restricted unpickler: every input is fed to unpickle() and to
// readLegacy(), and must either parse or throw FormatError; whatever parses must survive
// pickle() -> unpickle() unchanged. That invariant is checkOneInput() of the formats self-test,
// reused here as is (FINETORCH_FUZZER turns the self-test file into the fuzz target).
//
// Built and run by scripts/fuzz-native.sh (clang -fsanitize=fuzzer,address,undefined). This
// folder is not part of the addon: CMakeLists.txt only globs native/formats/*.cc.
#ifndef FINETORCH_FUZZER
#define FINETORCH_FUZZER 1
#endif
#include "../test/formats_selftest.cc"
