// Mutation fuzzing of every file format finetorch reads, each input loaded in a child process.
// This file is the folder's public API (used by test/fuzz/); the command line is cli.ts:
//
//   node dist/scripts/fuzz/cli.js --format all --count 10000 --seed 1 [--timeout-ms 5000]
//
// Formats and the loader each input goes to (all through the public API):
//   zip          .pth, torch >= 1.6 zip format     loadWeights
//   legacy       .pth, pre-1.6 torch.save format   loadWeights
//   safetensors  .safetensors                      loadWeights
//   checkpoint   finetorch checkpoint (.pth)       loadCheckpoint
//   jpeg, png    images                            decodeImage (eval and train decode settings, alternately)
//   yaml         experiment config                 resolveConfig({ config })
//   manifest     split manifest (JSON)             readSplitManifest
//   cache        decoded-image cache file          readCacheFile (never throws: ok:false is a rejection)
//
// Inputs are valid seeds changed by bit flips, byte overwrites, interesting integers, truncation,
// chunk insertion/deletion/duplication and splicing of two seeds, plus format-aware mutations:
// zip header fields (sizes, offsets, counts; 0xFFFFFFFF, 2^63, zip64 records), zip bombs (a deflated
// data.pkl that inflates to 2 GB, entries claiming huge uncompressed sizes, many central directory
// entries sharing one local file), pickles re-zipped with valid CRCs after opcode-aware mutations
// (BINUNICODE8/BINBYTES8/LONG4/FRAME lengths, storage element counts, sizes and strides), crafted
// pickles (nesting deeper than the limit, memo-shared DAGs that expand exponentially), legacy
// storage counts, safetensors header lengths and JSON fields (overlapping data ranges, huge shapes),
// JPEG SOF and PNG IHDR dimensions (with valid CRCs), PNG decompression bombs, YAML alias bombs and
// deep nesting, and JSON value replacement for manifests and cache headers.
//
// Each input is written to a temp file and loaded by a pool of long-lived worker processes (one
// input at a time each). Classification:
//   accepted   the loader returned
//   rejected   the loader threw an Error with a non-empty message (cache: returned ok:false)
//   crash      the worker died (signal or abnormal exit) while loading it; the worker is replaced
//   hang       no answer within --timeout-ms; the worker is killed and replaced
//   big-alloc  the worker's resident memory went over --rss-cap-mb (peak RSS after the input, and
//              polled while it runs), or the loader failed with an out-of-memory error (bad_alloc,
//              "not enough memory", JS heap exhaustion, ...): the input made it try to allocate
//              what it claimed instead of refusing it. Workers also run under an address-space
//              limit (--as-limit-mb, via prlimit) so that a claim of 100 GB fails loudly.
//   bad-error  rejected with something that is not an Error or has an empty message (or, for the
//              cache, thrown at all: readCacheFile promises never to throw for bad content)
// Anything but accepted/rejected is a finding: the input is saved to the findings folder (a temp
// folder unless --findings is given) with a .json describing it, and the exit status is 1.
//
// Where things are:
//   rng.ts, bytes.ts     seeded random streams; interesting integers and field writers
//   generic.ts           format-blind mutations, every mutator's fallback
//   pickle.ts, zip.ts, legacy.ts, safetensors.ts, jpeg.ts, png.ts, yaml.ts, json.ts, cache.ts
//                        one format's structure-aware mutations each (json.ts: manifests, shared JSON helpers)
//   formats.ts           the format table, the seed files, makeInput
//   worker.ts            the child process: loads one input with the public loader, answers over IPC
//   worker-process.ts    the parent's handle on one child: timeouts, memory caps, crash detection
//   runner.ts, report.ts the run over all inputs; its report and table
//   cli.ts               the command line
export { crc32 } from '../../lib/download/zip';
export { CACHE_FILES, CACHE_KEY, FORMATS, makeInput, makeSeeds, type FuzzFormat } from './formats';
export { mutatePickle, pickleOps, PickleWriter, stateDictPickle, type TensorSpec } from './pickle';
export { formatTable, type Finding, type FormatStats, type FuzzReport, type Outcome } from './report';
export { hash32, Rng } from './rng';
export { runFuzz, type FuzzOptions } from './runner';
export { loadInput, workerMain } from './worker';
export { buildZip, parseZip, zipFiles, type ZipFile } from './zip';
export { main } from './cli';
