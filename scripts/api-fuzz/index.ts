// API-sequence fuzzing: random sequences of the package's public calls (tensors, models,
// optimizers, schedulers, GradScaler, trainStep/evalStep, DataLoader, EventWriter, MetricsLog),
// with wrong, NaN, huge and missing arguments, use after dispose(), disposal while work is in flight
// and many concurrent promises, each run in a child process. No call sequence may take the process
// down: every failure must be a JS Error with a message. This file is the folder's API (used by
// test/api-fuzz/); the command line is cli.ts.
//
//   calls.ts        the JSON form of a sequence (shared by both sides)
//   arbitraries.ts  fast-check arbitraries: what sequences are generated
//   catalogue.ts    what each call does, through lib/ (child side)
//   worker.ts       the child: runs sequences, reports each call's outcome
//   child.ts        the parent's handle on the child: verdicts (crash, abort, hang, finding)
//   runner.ts       the run: fast-check, tallies, shrinking, regression files
//   cli.ts          node dist/scripts/api-fuzz/cli.js --calls N --seed S --timeout-ms T
export { describeCall, OP_NAMES, type Call, type Sequence, type SequenceStats } from './calls';
export { sequenceArbitrary } from './arbitraries';
export { ChildRunner, FAILURES, type SequenceResult, type Verdict } from './child';
export { replaySequence, runApiFuzz, signature, summaryLine, type ApiFuzzOptions, type ApiFuzzReport, type Failure, type RegressionFile } from './runner';
