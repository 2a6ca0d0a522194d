// The call catalogue, generator side: a fast-check arbitrary for the arguments of every operation,
// and the arbitrary of whole sequences. Arguments are mostly plausible (so that sequences reach deep
// states: a trained model, a restored optimizer, a half-read epoch) and sometimes wrong: undefined,
// NaN, ±Infinity, -0, negative, huge, strings, objects, functions, Symbols, BigInts, and objects of
// the wrong kind. fast-check shrinks a failing sequence by dropping calls and simplifying arguments;
// references are taken modulo the live objects, so a shrunk sequence still means something.
import fc from 'fast-check';
import { type Arg, type Call, KINDS, type Kind, type OpName, type Sequence, TYPED_ARRAYS } from './calls';

type A = fc.Arbitrary<Arg>;

const U: Arg = { u: 1 };
const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

/** Values no parameter of the API wants. */
export const weird: A = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<Arg>(
    U, null, { n: 'NaN' }, { n: 'Infinity' }, { n: '-Infinity' }, { n: '-0' }, -1, 0, 1, 0.5, -0.5, 2 ** 31, 2 ** 53 - 1, 2 ** 63, 1e300, -1e9,
    '', 'abc', 'cpu', 'cuda', 'cuda:7', true, false, { big: '3' }, { big: '-1' }, { sym: 1 }, { fn: 'true' }, { fn: 'throw' }, { obj: {} },
    { arr: [] }, { arr: [U] }, { ta: 'Float32Array', v: [1, 2] }, { obj: { toString: { fn: 'throw' } as Arg } },
  ) },
  { weight: 1, arbitrary: fc.record({ ref: fc.constantFrom<Kind>(...KINDS), i: fc.nat(5) }) },
);

const one = (...values: Arg[]): A => fc.constantFrom(...values);
/** undefined (the parameter left out) or a value. */
const opt = (a: A): A => fc.oneof(fc.constant(U), a);
const ref = (kind: Kind): A => fc.record({ ref: fc.constant(kind), i: fc.nat(3) });
const arr = (item: A, maxLength = 3, minLength = 0): A => fc.array(item, { minLength, maxLength }).map((v) => ({ arr: v }));
/** An object Arg: `required` keys always there, `optional` ones sometimes. */
const obj = (required: Record<string, A>, optional: Record<string, A> = {}): A =>
  fc.record({ ...required, ...optional }, { requiredKeys: Object.keys(required) }).map((o) => ({ obj: o as Record<string, Arg> }));
const args = (...list: A[]): fc.Arbitrary<Arg[]> => fc.tuple(...list) as unknown as fc.Arbitrary<Arg[]>;
/** before..., images, labels (or undefined when `labelsOptional` and so drawn), after... */
const stepArgs = (before: A[], batch: fc.Arbitrary<[Arg, Arg]>, after: A[], labelsOptional = false): fc.Arbitrary<Arg[]> =>
  fc
    .tuple(args(...before), batch, labelsOptional ? fc.boolean() : fc.constant(false), args(...after))
    .map(([b, [x, y], dropLabels, a]) => [...b, x, dropLabels ? U : y, ...a]);

type Generators = Record<OpName, { weight: number; args: fc.Arbitrary<Arg[]> }>;

/**
 * The argument generators of every operation. `wild`: any value may be replaced by a wrong one;
 * otherwise the values are of the right types (still sometimes wrong together: a label out of
 * range, images of the wrong size, a model disposed before use).
 */
function makeGenerators(wild: boolean): Generators {
  /** Usually a good value, sometimes (when wild) a wrong one. */
  const or = (good: A, weight = 6): A => (wild ? fc.oneof({ weight, arbitrary: good }, { weight: 1, arbitrary: weird }) : good);
  const smallInt = fc.integer({ min: -1, max: 4 });
  const bool = or(fc.boolean());
  const shape: A = or(
    fc.oneof(
      { weight: 6, arbitrary: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }).map((v) => ({ arr: v })) },
      { weight: 1, arbitrary: one({ arr: [2 ** 31, 2 ** 31] }, { arr: [2 ** 62] }, { arr: [2 ** 40] }, { arr: [2 ** 31, 2 ** 31, 0] }, { arr: [-1] }, { arr: [1.5] }, { arr: [2, { n: 'NaN' }] }) },
    ),
  );
  const imageShapes = fc.constantFrom(
    [1, 3, 32, 32], [2, 3, 32, 32], [2, 3, 32, 32], [1, 3, 64, 64], [2, 3, 64, 64], [0, 3, 32, 32], [1, 3, 8, 8], [1, 3, 1, 1],
    [2, 1, 32, 32], [3, 32, 32], [2, 512], [2, 4096], [2, 3, 32, 33],
  );
  /** Images for forward/trainStep: a fresh batch, a tensor of the sequence (any shape), or a wrong value. */
  const images: A = or(
    fc.oneof({ weight: 5, arbitrary: imageShapes.map((s): Arg => ({ randn: [...s] })) }, { weight: 2, arbitrary: ref('tensor') }),
  );
  const labels: A = or(
    fc.oneof(
      { weight: 6, arbitrary: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 2 }).map((v) => ({ labels: v })) },
      { weight: 1, arbitrary: fc.array(fc.integer({ min: -2, max: 1000 }), { maxLength: 3 }).map((v) => ({ labels: v })) },
      { weight: 1, arbitrary: ref('tensor') },
      // soft targets (float [N, C]): right and wrong shapes
      { weight: 1, arbitrary: one({ randn: [2, 3] }, { randn: [2, 2] }, { randn: [3, 3] }, { randn: [2, 3, 1] }) },
    ),
  );
  /** images and labels for a step: usually a batch that fits together (same N, N >= 2 for BatchNorm), else each on its own. */
  const batch: fc.Arbitrary<[Arg, Arg]> = fc.oneof(
    {
      weight: wild ? 1 : 3,
      arbitrary: fc
        .tuple(fc.integer({ min: 2, max: 3 }), fc.constantFrom(32, 32, 64), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 3 }))
        .map(([n, size, values]): [Arg, Arg] => [{ randn: [n, 3, size, size] }, { labels: values.slice(0, n) }]),
    },
    { weight: 1, arbitrary: fc.tuple(images, labels) },
  );
  const prefixes = arr(one('fc', 'layer4', 'layer1.0', 'features', 'classifier.6', 'classifier.3', 'conv1', 'bn1', 'nope', ''), 2);
  const lr = or(one(1e-3, 0.1, 0, 1e-5, 10));
  const typedData: A = fc
    .record({ ta: fc.constantFrom(...TYPED_ARRAYS), v: fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 8 }) })
    .map((r) => r as Arg);

  const modelOptions = or(obj({}, { numClasses: or(one(3, 3, 1, 2, 4)), head: or(one('linear', 'conv1x1')), dropout: or(one(0, 0.5, 1)), attention: or(one('none', 'se', 'cbam')) }), 8);
  const groups = or(arr(obj({ prefixes }, { lr, weightDecay: or(one(0, 1e-2)) }), 2));
  const betas = or(fc.oneof({ weight: 4, arbitrary: one({ arr: [0.9, 0.999] }) }, { weight: 1, arbitrary: arr(one(0.9, 0.999, 1), 3, 2) }));
  const optimizerOptions = or(
    fc.oneof(
      obj({ type: or(fc.constant('sgd')), lr }, { weightDecay: or(one(0, 1e-4)), momentum: or(one(0, 0.9)), nesterov: bool, dampening: or(one(0, 0.1)), foreach: or(one(true, false, 'auto')), groups }),
      obj({ type: or(one('adam', 'adamw')), lr }, { weightDecay: or(one(0, 1e-4)), betas, eps: or(one(1e-8, 0)), amsgrad: bool, foreach: or(one(false, 'auto', true)), groups }),
    ),
    10,
  );
  const schedulerConfig = or(
    fc.oneof(
      obj({ type: fc.constant('step') }, { stepSize: or(one(1, 2)), gamma: or(one(0.1, 0.5)) }),
      obj({ type: fc.constant('multistep') }, { milestones: or(arr(one(1, 2, 3, 0, -1))), gamma: or(one(0.1)) }),
      obj({ type: fc.constant('cosine') }, { tMax: or(one(1, 3)), etaMin: or(one(0, 1e-6)) }),
      obj({ type: fc.constant('warmup_cosine') }, { warmupEpochs: or(one(1, 2)), warmupStartFactor: or(one(0.1)), tMax: or(one(3, 5, 1)), etaMin: or(one(0)) }),
      obj({ type: fc.constant('plateau') }, { mode: or(one('min', 'max')), factor: or(one(0.1, 0.5)), patience: or(one(0, 1)), cooldown: or(one(0, 1)), minLr: or(one(0, 1e-6)) }),
      obj({ type: fc.constant('none') }),
    ),
  );
  const commonStepOptions = {
    labelSmoothing: or(one(0, 0.1)), amp: or(one(false, true, 'bf16', 'fp16')), features: bool,
    classWeights: wild ? or(fc.oneof(one({ randn: [3] }, { randn: [2] }), ref('tensor'))) : fc.constant(U), // [3] fits only 3 classes
  };
  const trainStepOptions = or(
    obj({}, { ...commonStepOptions, clipGradNorm: or(one(0, 1, 1e-8)), gradStatsBins: or(one(0, 4)), scaler: ref('scaler'), gradientSync: or(ref('sync')) }),
    8,
  );
  /** Tensors for collectives: small fresh ones (float32, int64), or any tensor of the sequence (any dtype, shape, state). */
  const collectiveTensor: A = or(
    fc.oneof(
      { weight: 2, arbitrary: one({ randn: [2] }, { randn: [3, 2] }, { randn: [0] }, { labels: [1, 2] }) },
      { weight: 3, arbitrary: ref('tensor') },
    ),
  );
  const root = or(one(0, 0, 0, 1, -1, 0.5));
  const masterPort = or(one('free', 'free', 'free', 'free', 'free', 'free', 'busy', 0, 65536));
  const groupOptions = or(
    fc.oneof(
      { weight: 6, arbitrary: obj({ rank: fc.constant(0), worldSize: fc.constant(1), masterPort: fc.constant('free'), timeoutSeconds: fc.constant(5) }, { masterAddr: one('127.0.0.1', 'localhost') }) },
      {
        weight: 3,
        arbitrary: obj(
          { rank: or(one(0, 0, 0, 1, -1, 0.5)), worldSize: or(one(1, 1, 1, 2, 0)), masterPort, timeoutSeconds: or(one(5, 5, 0.2, 0, -1)) },
          {
            localRank: or(one(0, 1)), localWorldSize: or(one(1, 2, 0)), masterAddr: or(one('127.0.0.1', 'localhost', '', '256.1.1.1')),
            backend: or(one('gloo', 'gloo', 'nccl', 'mpi')), unknownOption: one(1),
          },
        ),
      },
    ),
    10,
  );
  // mostly ResNet layers that exist (a list with one wrong name is refused whole)
  const pruneModules = fc.oneof(
    { weight: 4, arbitrary: one({ arr: ['conv1'] }, { arr: ['fc'] }, { arr: ['layer1.0.conv1'] }, { arr: ['layer1.0.conv1', 'layer1.0.conv2'] }, { arr: ['conv1', 'layer4.1.conv2', 'fc'] }) },
    { weight: 1, arbitrary: arr(one('conv1', 'fc', 'layer1.0.conv1', 'layer1.0.bn1', 'nope', 'layer1.0.se.fc1', 'features.0', 'classifier.6'), 3, 1) },
  );
  const pruneAmount = or(fc.oneof(obj({ amount: or(one(0, 0.3, 0.5, 1, 1.5)) }), obj({ count: or(one(0, 1, 3, 1e6, -1)) }), obj({ amount: one(0.3), count: one(1) }), obj({})));
  const calibrationBatch: A = fc.oneof({ weight: 4, arbitrary: one({ randn: [2, 3, 16, 16] }, { randn: [1, 3, 32, 32] }) }, { weight: 1, arbitrary: one({ randn: [2, 1, 16, 16] }, { randn: [0, 3, 16, 16] }, { randn: [3, 16, 16] }) }, { weight: 1, arbitrary: ref('tensor') });
  const mixOptions = or(obj({ numClasses: or(one(3, 3, 2, 0)), mixupAlpha: or(one(0, 0.2, 0.2, 1)) }, { cutmixAlpha: or(one(0, 1, 0.5)) }));
  /** Synthetic decoded images: [width, height] with the right bytes, or [width, height, bytes] with too few or too many. */
  const imageSpecs: A = arr(
    fc.oneof(
      { weight: 5, arbitrary: one({ arr: [16, 16] }, { arr: [20, 12] }, { arr: [8, 8] }) },
      { weight: 1, arbitrary: one({ arr: [16, 16, 10] }, { arr: [1, 1] }, { arr: [0, 0] }, { arr: [16, 16, 100000] }, { arr: [-1, 4] }, { arr: [1e6, 1e6, 12] }) },
    ),
    3,
    1,
  );
  const evalStepOptions = or(obj({}, { ...commonStepOptions, returnLogits: bool }), 8);
  const metricsRecord = or(
    obj(
      { phase: or(one('head', 'finetune')), epoch: or(one(1, 2)), step: or(one(0, 10)), split: or(one('train', 'val', 'test')), loss: or(one(0.5, 2)), top1: or(one(0.25)) },
      { kind: or(one('metrics', 'grad_norm')), norms: or(obj({}, { fc: or(one(1)), conv1: or(one(0.5)) })), top5: or(one(0.9)), lr, time: or(one(1.7e9)) },
    ),
  );

  const generators: Generators = {
    tensor: { weight: 3, args: args(or(fc.oneof(typedData, arr(or(smallInt), 6))), opt(shape), opt(or(obj({}, { dtype: or(fc.constantFrom(...DTYPES)) })))) },
    randn: { weight: 3, args: args(shape) },
    matmul: { weight: 2, args: args(or(ref('tensor')), or(ref('tensor'))) },
    cat: { weight: 2, args: args(or(arr(or(ref('tensor'), 10), 3, 1)), opt(or(one(0, 1, -1, 3)))) },
    indexSelect: { weight: 2, args: args(or(ref('tensor')), or(fc.oneof(arr(fc.integer({ min: -1, max: 3 }), 4), typedData)), opt(or(one(0, 1, -1)))) },
    'tensor.toTypedArray': { weight: 2, args: args(ref('tensor')) },
    'tensor.toArray': { weight: 1, args: args(ref('tensor')) },
    'tensor.to': { weight: 2, args: args(ref('tensor'), or(one('cpu', 'cpu', 'cuda', 'cuda:1', 'gpu')), opt(or(fc.constantFrom(...DTYPES))), opt(or(obj({}, { nonBlocking: bool })))) },
    'tensor.clone': { weight: 1, args: args(ref('tensor')) },
    'tensor.dispose': { weight: 3, args: args(ref('tensor')) },
    'tensor.inspect': { weight: 1, args: args(ref('tensor')) },

    // AlexNet is kept rare: its 9216x4096 classifier makes a first Adam step take seconds on one core
    createModel: { weight: 5, args: args(or(fc.oneof({ weight: 12, arbitrary: fc.constant('resnet18') }, { weight: 1, arbitrary: fc.constant('alexnet') }, { weight: 1, arbitrary: fc.constant('mobilenet_v3_large') }), 10), opt(modelOptions)) },
    'model.forward': { weight: 4, args: args(ref('model'), images, opt(or(obj({}, { grad: bool })))) },
    'model.features': { weight: 2, args: args(ref('model'), images) },
    'model.classify': { weight: 1, args: args(ref('model'), or(fc.oneof(one({ randn: [2, 512] }, { randn: [1, 4096] }, { randn: [2, 1280] }, { randn: [2, 3] }), ref('tensor'))), opt(or(obj({}, { grad: bool })))) },
    'model.backward': { weight: 2, args: stepArgs([ref('model')], batch, [opt(or(obj({}, { labelSmoothing: or(one(0, 0.1)) })))]) },
    'model.namedGradients': { weight: 1, args: args(ref('model')) },
    'model.train': { weight: 1, args: args(ref('model'), opt(bool)) },
    'model.eval': { weight: 1, args: args(ref('model')) },
    'model.freeze': { weight: 2, args: args(ref('model'), opt(or(obj({}, { except: or(prefixes), only: or(prefixes), predicate: or(one({ fn: 'true' }, { fn: 'false' }, { fn: 'throw' })), freezeBatchNorm: bool })))) },
    'model.unfreeze': { weight: 1, args: args(ref('model'), opt(or(obj({}, { only: or(prefixes) })))) },
    'model.stateDict': { weight: 2, args: args(ref('model')) },
    exportOnnx: {
      weight: 1,
      args: args(
        or(ref('model')),
        or(one('file', 'file', 'no-folder')),
        opt(or(obj({}, { imageSize: or(one(32, 64, 0, 7)), opset: or(one(11, 13, 17, 10, 18)), classNames: or(one({ arr: ['a', 'b', 'c'] }, { arr: ['a'] })), resize: or(one(36, 0)) }))),
      ),
    },
    'model.namedParameters': { weight: 1, args: args(ref('model')) },
    'model.trainableParameters': { weight: 1, args: args(ref('model')) },
    'model.loadStateDict': {
      weight: 3,
      args: args(ref('model'), or(ref('state')), one('as-is', 'as-is', 'half', 'empty', 'extra', 'wrong-shape', 'wrong-dtype', 'disposed-entry', 'non-tensor', 'object'), opt(or(obj({}, { strict: bool })))),
    },
    'model.to': { weight: 1, args: args(ref('model'), or(one('cpu', 'cuda', 'cuda:0'))) },
    'model.channelsLast': { weight: 1, args: args(ref('model'), opt(bool)) },
    'model.convAlgorithm': { weight: 1, args: args(ref('model'), or(one('direct', 'winograd', 'fast', 7))) },
    'model.nonFinite': { weight: 1, args: args(ref('model'), opt(or(obj({}, { trainableOnly: bool })))) },
    'model.inspect': { weight: 1, args: args(ref('model')) },
    'model.dispose': { weight: 1, args: args(ref('model')) },
    'model.forwardThenDispose': { weight: 1, args: stepArgs([ref('model')], batch, []) },
    'state.take': { weight: 1, args: args(ref('state'), fc.nat(200)) },
    'state.disposeOne': { weight: 1, args: args(ref('state'), fc.nat(200)) },

    createOptimizer: { weight: 4, args: args(or(ref('model'), 12), optimizerOptions) },
    'optimizer.getLr': { weight: 2, args: args(ref('optimizer'), or(one(0, 1, 2))) },
    'optimizer.setLr': { weight: 2, args: args(ref('optimizer'), or(one(0, 1)), lr) },
    'optimizer.stateDict': { weight: 2, args: args(ref('optimizer')) },
    'optimizer.loadStateDict': {
      weight: 3,
      args: args(ref('optimizer'), or(ref('optState')), one('as-is', 'as-is', 'as-is', 'as-is', 'wrong-type', 'names', 'no-state', 'bad-index', 'bad-field', 'wrong-shape', 'map', 'lr-nan')),
    },
    'optimizer.dispose': { weight: 1, args: args(ref('optimizer')) },
    createScheduler: { weight: 2, args: args(or(ref('optimizer'), 10), schedulerConfig) },
    'scheduler.step': { weight: 2, args: args(ref('scheduler'), opt(or(one(0.5, 1)))) },
    'scheduler.getLastLr': { weight: 1, args: args(ref('scheduler')) },
    'scheduler.stateDict': { weight: 1, args: args(ref('scheduler')) },
    'scheduler.loadStateDict': { weight: 1, args: args(ref('scheduler'), or(ref('schedState')), one('as-is', 'json', 'mutated')) },
    createGradScaler: { weight: 1, args: args(opt(or(obj({}, { initScale: or(one(1024, 65536)), growthFactor: or(one(2)), backoffFactor: or(one(0.5)), growthInterval: or(one(1, 2000)) })))) },
    'scaler.update': { weight: 1, args: args(ref('scaler'), bool) },
    'scaler.stateDict': { weight: 1, args: args(ref('scaler')) },
    'scaler.loadStateDict': { weight: 1, args: args(ref('scaler'), or(obj({ scale: or(one(1024)), goodSteps: or(one(0, 3)) }))) },

    trainStep: { weight: 5, args: stepArgs([or(ref('model'), 12), or(ref('optimizer'), 12)], batch, [opt(trainStepOptions)]) },
    evalStep: { weight: 3, args: stepArgs([or(ref('model'), 12)], batch, [opt(evalStepOptions)], true) },
    trainStepThenDispose: { weight: 1, args: stepArgs([ref('model'), ref('optimizer')], batch, [one('model', 'optimizer', 'both')]) },

    createLoader: {
      weight: 1,
      args: args(
        or(one('all', 'all', 'empty', 'missing')),
        or(obj({ batchSize: or(one(1, 2, 4)), transform: or(one('train', 'eval')) }, { shuffle: bool, dropLast: bool, seed: or(one(0, 1, 2 ** 32)), prefetch: or(one(0, 1, 2, 100)) }), 10),
        or(one(16, 32, 8)),
      ),
    },
    'loader.next': { weight: 2, args: args(ref('loader'), opt(or(one(0, 1)))) },
    'loader.stop': { weight: 1, args: args(ref('loader')) },
    'loader.order': { weight: 1, args: args(ref('loader'), or(one(0, 5))) },

    createEventWriter: { weight: 1, args: args(or(one('dir', 'dir', 'file'))) },
    'writer.addScalar': { weight: 1, args: args(ref('writer'), or(one('loss', 'a/b')), or(one(1, 0.25, { n: 'NaN' })), or(one(0, 1, 100)), opt(or(one(1.7e9)))) },
    'writer.addHistogram': { weight: 1, args: args(ref('writer'), or(one('weights')), or(fc.oneof(arr(one(1, 2, 3, { n: 'NaN' }), 5), typedData)), or(one(0, 3))) },
    'writer.flush': { weight: 1, args: args(ref('writer')) },
    'writer.close': { weight: 1, args: args(ref('writer')) },
    createMetricsLog: { weight: 1, args: args(or(one('dir', 'dir')), opt(or(one('metrics.jsonl', 'm.jsonl')))) },
    'log.log': { weight: 1, args: args(ref('log'), metricsRecord) },
    'log.flush': { weight: 1, args: args(ref('log')) },
    'log.close': { weight: 1, args: args(ref('log')) },

    createProcessGroup: { weight: 3, args: args(groupOptions) },
    'group.allReduce': { weight: 2, args: args(ref('group'), collectiveTensor, opt(or(one('sum', 'max', 'min', 'SUM')))) },
    'group.broadcast': { weight: 1, args: args(ref('group'), collectiveTensor, opt(root)) },
    'group.allGather': { weight: 1, args: args(ref('group'), collectiveTensor) },
    'group.barrier': { weight: 1, args: args(ref('group')) },
    'group.shareString': {
      weight: 1,
      args: args(ref('group'), or(one('run', 'run', '', 'a/b', 'é✓', 'k\u0000k')), or(one('name', '', 'x'.repeat(4096), 'é✓', 42, { sym: 1 })), opt(root)),
    },
    'group.broadcastModel': { weight: 1, args: args(ref('group'), or(ref('model'))) },
    'group.gradientSync': {
      weight: 2,
      args: args(
        ref('group'),
        or(ref('model')),
        opt(or(obj({}, { bucketCapMb: or(one(25, 1, 0.001, 0, -1, 1e9)), flatBuckets: or(one(false, true, 1)), unknownOption: one(1) }))),
        one('as-is', 'as-is', 'as-is', 'frozen'),
      ),
    },
    // kept rare: it waits 1.5 s for heartbeats by design
    'group.explainFailure': { weight: 1, args: args(ref('group'), or(one('error', 'text'))) },
    'group.inspect': { weight: 1, args: args(ref('group')) },
    'group.abandon': { weight: 1, args: args(ref('group')) },
    'group.dispose': { weight: 1, args: args(ref('group')) },
    'group.disposeDuring': {
      weight: 1,
      args: args(ref('group'), one('allReduce', 'allGather', 'barrier', 'broadcastModel', 'gradientSync'), one('dispose', 'dispose', 'abandon'), collectiveTensor, ref('model')),
    },
    'sync.inspect': { weight: 1, args: args(ref('sync')) },
    'sync.dispose': { weight: 1, args: args(ref('sync')) },
    'sync.trainStep': {
      weight: 2,
      args: stepArgs([ref('sync'), or(ref('optimizer'), 12)], batch, [one('own', 'own', 'own', 'other'), one('none', 'none', 'none', 'sync', 'group', 'abandon', 'model')]),
    },

    // pruning: tiny ResNet-18s (and whatever else the sequence made); names real and not
    'pruning.prune': {
      weight: 3,
      args: args(one('l1', 'global', 'structured', 'identity'), or(ref('model'), 12), or(pruneModules), or(pruneAmount)),
    },
    'pruning.makePermanent': { weight: 2, args: args(or(ref('model'), 12), opt(or(pruneModules))) },
    'pruning.inspect': { weight: 1, args: args(or(ref('model'), 12)) },
    'pruning.pruneThenDispose': { weight: 1, args: args(ref('model'), one('l1', 'structured', 'global'), pruneModules, pruneAmount) },
    'shrink.shrinkChannels': { weight: 2, args: args(or(ref('model'), 12), or(obj({ amount: or(one(0, 0.25, 0.5, 0.9, 1)) }))) },
    'shrink.resizeChannels': { weight: 1, args: args(or(ref('model'), 12), or(obj({}, { 'layer1.0.conv1': or(one(1, 8, 64, 65, 0)), 'layer4.1.conv1': or(one(1, 511)), 'fc': one(1) }))) },
    'native.prune': {
      weight: 2,
      args: args(
        or(ref('model'), 8),
        or(obj(
          { method: or(one('l1_unstructured', 'global_l1', 'l2_structured', 'identity', 'bogus')), modules: or(pruneModules), amount: or(one(0, 0.3, 1, 2, -1, 1e9)), isCount: bool },
          {},
        )),
      ),
    },
    'native.makePermanent': { weight: 1, args: args(or(ref('model'), 8), or(pruneModules)) },
    'native.shrinkChannels': {
      weight: 2,
      args: args(
        or(ref('model'), 8),
        or(arr(fc.tuple(one('layer1.0.conv1', 'layer2.1.conv1', 'fc', 'conv1', 'nope'), one(1, 8, 0, -1, 64, 1000, 0.5)).map(([n, w]): Arg => ({ arr: [n, w] })), 3)),
        bool,
      ),
    },
    'native.shrinkableConvs': { weight: 1, args: args(or(ref('model'), 8)) },

    // int8: calibration with tiny batches
    quantizeModel: {
      weight: 4,
      args: args(or(ref('model'), 12), or(arr(or(calibrationBatch, 8), 2, 1), 12), opt(or(obj({}, { engine: or(one('auto', 'fbgemm', 'qnnpack', 'x86', 'onednn')), observer: or(one('minmax', 'histogram')) })))),
    },
    quantizeThenDispose: { weight: 1, args: args(ref('model'), arr(calibrationBatch, 2, 1)) },
    'qmodel.forward': { weight: 3, args: args(ref('qmodel'), images) },
    'qmodel.quantizeInput': { weight: 1, args: args(ref('qmodel'), images) },
    'qmodel.evaluate': { weight: 2, args: stepArgs([ref('qmodel')], batch, []) },
    'qmodel.stateDict': { weight: 1, args: args(ref('qmodel')) },
    'qmodel.saveLoad': { weight: 1, args: args(ref('qmodel'), opt(or(one('auto', 'qnnpack', 'fbgemm')))) },
    'qmodel.load': { weight: 1, args: args(one('missing', 'garbage', 'folder', 'float-model', ''), ref('model')) },
    'qmodel.inspect': { weight: 1, args: args(ref('qmodel')) },
    'qmodel.dispose': { weight: 1, args: args(ref('qmodel')) },
    'qmodel.forwardThenDispose': { weight: 1, args: args(ref('qmodel'), images, one('forward', 'stateDict', 'save')) },

    mixBatch: { weight: 2, args: stepArgs([mixOptions], batch, [or(one(0, 1, 7))]) },
    'mix.applyDraw': {
      weight: 2,
      args: stepArgs(
        [mixOptions],
        batch,
        [or(obj({ kind: one('mixup', 'cutmix'), lam: or(one(0, 0.5, 1, 2)), box: or(one(null, { arr: [0, 0, 8, 8] }, { arr: [0, 0, 64, 64] }, { arr: [8, 8, 0, 0] }, { arr: [-1, 0, 4, 4] }, { arr: [0, 0, 33, 33] }, { arr: [1, 2] })) }))],
      ),
    },
    'native.mixBatch': {
      weight: 2,
      args: args(
        or(fc.oneof(imageShapes.map((s): Arg => ({ randn: [...s] })), ref('tensor'))),
        or(fc.oneof(fc.array(fc.integer({ min: -1, max: 3 }), { minLength: 1, maxLength: 2 }).map((v): Arg => ({ labels: v })), ref('tensor'))),
        or(obj({ numClasses: or(one(2, 3, 0, -1, 2 ** 40)), lam: or(one(0.5, 0, 1, 2, -1)), box: or(one(null, { arr: [0, 0, 8, 8] }, { arr: [0, 0, 1e6, 1e6] }, { arr: [8, 8, 0, 0] }, { arr: [-5, -5, 4, 4] }, { arr: [1] })) })),
      ),
    },
    trainStepMixed: { weight: 2, args: stepArgs([or(ref('model'), 12), or(ref('optimizer'), 12)], batch, [mixOptions, one('none', 'none', 'targets', 'model')]) },
    augmentBatch: {
      weight: 2,
      args: args(
        or(obj(
          { size: or(one(16, 16, 32, 8, 1)) },
          {
            randomErasing: or(fc.oneof(one(0, 0.5, 1), obj({ probability: or(one(1, 0.5)) }, { scale: or(one({ arr: [0.02, 0.33] }, { arr: [0.5, 0.1] }, { arr: [1, 1] })), ratio: or(one({ arr: [0.3, 3.3] }, { arr: [0, 1] }, { arr: [100, 1000] })) }))),
            augmentPolicy: or(fc.oneof(one('none', 'trivial_augment_wide', 'rand_augment', 'auto_augment'), obj({ policy: or(one('rand_augment', 'trivial_augment_wide')) }, { numOps: or(one(0, 2, 4, 5)), magnitude: or(one(0, 9, 30, 31)) }))),
            randomResizedCrop: bool, horizontalFlip: bool,
          },
        )),
        or(imageSpecs),
        or(one(0, 1, 2)),
        or(one('drawn', 'drawn', 'drawn', 'drawn', null, { arr: [0, 0, 4, 4] }, { arr: [0, 0, 4, 4, 0, 0, 4, 4] }, { arr: [30, 30, 8, 8] }, { arr: [0, 0, -1, 4] }, { arr: [0, 0, 0, 0] })),
      ),
    },
    'native.augmentBatch': {
      weight: 2,
      args: args(
        or(imageSpecs),
        // a valid 22-number block per image (crop, flip, jitter, order, policy ops) with one entry sometimes replaced, or any list
        or(fc.oneof(
          { weight: 3, arbitrary: fc.tuple(fc.nat(21), one(0, 1, 0.5, -1, 1e9, -1e9, 4, 14, 31, 255)).chain(([at, v]) => fc.boolean().map((mutate): Arg => {
            const block = [0, 0, 16, 16, 0, 1, 1, 1, 0, 0, 1, 2, 3, 2, 5, 30, 10, 8, 0, 0, 0, 0];
            if (mutate) block[at] = v as number;
            return { arr: block };
          })) },
          { weight: 1, arbitrary: arr(one(0, 1, 0.5, -1, 1e9, 4, 14, 31), 24) },
        )),
        or(obj(
          { width: or(one(16, 8, 0, -1)), height: or(one(16, 8, 0)), mean: or(one({ arr: [0.5, 0.5, 0.5] }, { arr: [0.5] })), std: or(one({ arr: [0.2, 0.2, 0.2] }, { arr: [0, 0, 0] })), channelsLast: bool, pinMemory: bool, threads: or(one(1, 0, 2)) },
          { erase: or(one(null, { arr: [0, 0, 4, 4] }, { arr: [10, 10, 10, 10] }, { arr: [-3, 0, 100, 4] }, { arr: [0, 0, 2 ** 31 - 1, 2 ** 31 - 1] }, { arr: [1] })) },
        )),
      ),
    },
    applyPolicySteps: {
      weight: 2,
      args: args(
        or(imageSpecs),
        or(arr(arr(obj({ op: or(one('Rotate', 'ShearX', 'Posterize', 'Solarize', 'Equalize', 'AutoContrast', 'TranslateY', 'Invert', 'Nope')), magnitude: or(one(0, 30, -30, 8, 0.5, 1e9, -1e9, 255)) }), 5), 3)),
      ),
    },
    'native.augmentPolicyBatch': {
      weight: 2,
      args: args(
        or(imageSpecs),
        or(fc.oneof(
          arr(one(0, 1, 2, 4, 5, 14, 15, -1, 1e9, 30, -30, 0.5, 8, 9), 20),
          fc.tuple(fc.integer({ min: 0, max: 5 }), fc.array(fc.tuple(fc.integer({ min: -1, max: 15 }), one(0, 8, 30, -30, 1e6, 255)), { minLength: 4, maxLength: 4 }))
            .map(([n, steps]): Arg => ({ arr: [n, ...steps.flat()] })),
        )),
      ),
    },

    awaitAll: { weight: 2, args: args() },
    forget: { weight: 1, args: args(fc.constantFrom<Arg>(...KINDS), fc.nat(5)) },
    gc: { weight: 1, args: args() },
  };
  return generators;
}

/** Usually awaited; sometimes started and left running (spawn) or started several times at once. */
const flags: fc.Arbitrary<Pick<Call, 'spawn' | 'times'>> = fc.oneof(
  { weight: 10, arbitrary: fc.constant({}) },
  { weight: 2, arbitrary: fc.constant({ spawn: true }) },
  { weight: 1, arbitrary: fc.record({ times: fc.integer({ min: 2, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ spawn: fc.constant(true), times: fc.integer({ min: 2, max: 8 }) }) },
);

const WELL_TYPED = makeGenerators(false);
const WILD = makeGenerators(true);

function callsOf(generators: Generators): fc.Arbitrary<Call> {
  return fc.oneof(
    ...(Object.entries(generators) as [OpName, Generators[OpName]][]).map(([op, g]) => ({
      weight: g.weight,
      arbitrary: fc.tuple(g.args, flags).map(([a, f]): Call => ({ op, args: a, ...f })),
    })),
  );
}

/** Two calls in three have well-typed arguments, one in three wild ones. */
export const callArbitrary: fc.Arbitrary<Call> = fc.oneof({ weight: 2, arbitrary: callsOf(WELL_TYPED) }, { weight: 1, arbitrary: callsOf(WILD) });

const call = (op: OpName, a: fc.Arbitrary<Arg[]>, weight: number) => ({ weight, arbitrary: a.map((list): Call => ({ op, args: list })) });

const goodModel = call('createModel', args(fc.oneof({ weight: 12, arbitrary: fc.constant('resnet18') }, { weight: 1, arbitrary: fc.constant('alexnet') }, { weight: 1, arbitrary: fc.constant('mobilenet_v3_large') }), obj({ numClasses: fc.constant(3) })), 1).arbitrary;
/** A world-size-1 group and a sync of the first model: half the sequences have them from the start, to reach the collectives and synced steps. */
const goodGroup = call('createProcessGroup', args(obj({ rank: fc.constant(0), worldSize: fc.constant(1), masterPort: fc.constant('free'), timeoutSeconds: fc.constant(5) })), 1).arbitrary;
const goodSync = call('group.gradientSync', args(fc.constant({ ref: 'group', i: 0 }), fc.constant({ ref: 'model', i: 0 }), opt(obj({}, { flatBuckets: fc.boolean() })), fc.constant('as-is')), 1).arbitrary;
const goodOptimizer = call('createOptimizer', args(ref('model'), obj({ type: one('sgd', 'adam', 'adamw'), lr: one(1e-3, 0.1) }, { weightDecay: one(0, 1e-4) })), 1).arbitrary;

/** A call that makes something later calls can use, with arguments that work. */
const creatorArbitrary: fc.Arbitrary<Call> = fc.oneof(
  { weight: 2, arbitrary: goodModel },
  { weight: 2, arbitrary: goodOptimizer },
  call('model.stateDict', WELL_TYPED['model.stateDict'].args, 1),
  call('optimizer.stateDict', WELL_TYPED['optimizer.stateDict'].args, 1),
  call('randn', args(fc.constantFrom({ arr: [2, 3, 32, 32] }, { arr: [2, 3] }, { arr: [3, 2] }, { arr: [4] })), 1),
  call('createLoader', args(fc.constant('all'), obj({ batchSize: one(2, 4), transform: one('train', 'eval') }), one(16, 32)), 1),
  call('createScheduler', args(ref('optimizer'), obj({ type: fc.constant('step'), stepSize: one(1, 2) })), 1),
  call('createGradScaler', args(opt(obj({}, { initScale: one(1024), growthInterval: one(1, 2) }))), 1),
  call('createEventWriter', args(fc.constant('dir')), 1),
  call('createMetricsLog', args(fc.constant('dir')), 1),
  call('createProcessGroup', args(obj({ rank: fc.constant(0), worldSize: fc.constant(1), masterPort: fc.constant('free'), timeoutSeconds: fc.constant(5) })), 1),
  call('group.gradientSync', args(ref('group'), ref('model'), opt(obj({}, { flatBuckets: fc.boolean() })), fc.constant('as-is')), 1),
);

/**
 * Sequences of 1 to maxLength calls: usually a model and an optimizer first, then a few calls that
 * make loaders, schedulers, writers... (so that most sequences get past "nothing to call it on"),
 * then any calls. Shrinking can drop every part.
 */
export function sequenceArbitrary(maxLength = 80): fc.Arbitrary<Sequence> {
  const setUp = Math.min(6, maxLength - 1);
  const maybe = (a: fc.Arbitrary<Call>, weight: number) => fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight, arbitrary: a });
  return fc
    .tuple(
      maybe(goodModel, 4),
      maybe(goodOptimizer, 3),
      fc.oneof(fc.constant<Call[]>([]), fc.tuple(goodGroup, goodSync)),
      fc.array(creatorArbitrary, { maxLength: setUp, size: 'max' }),
      fc.array(callArbitrary, { minLength: 1, maxLength: Math.max(1, maxLength - setUp - 4), size: 'max' }),
    )
    .map(([model, optimizer, group, more, rest]) => [...(model ? [model] : []), ...(optimizer ? [optimizer] : []), ...group, ...more, ...rest]);
}
