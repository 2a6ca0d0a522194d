// Structured pruning that shrinks a ResNet: output channels of the convs inside its blocks go
// for good, with their BatchNorm entries and the next conv's input channels, leaving a smaller
// dense network whose state_dict names are unchanged (the shapes are not: checkpoints record the
// widths, see lib/training/checkpoint.ts).
import { native } from '../../binding';
import { Model } from './model';
import { integerInRange, invalid, knownKeys, numberInRange, plainObject } from '../utils/validate';

function checkModel(model: unknown): Model {
  if (!(model instanceof Model)) throw invalid('Model', 'model', model);
  return model;
}

/** Python's round(): halves to even, as PyTorch's _compute_nparams_toprune counts. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Output widths of the convs shrinkChannels can narrow: each ResNet block's conv1 (and a
 * Bottleneck's conv2). Their outputs only feed the block's next conv, so removing channels there
 * keeps the residual widths, and any width is a valid network.
 */
export function channelWidths(model: Model): Record<string, number> {
  return Object.fromEntries(native().shrinkableConvs(checkModel(model).native));
}

function checkWidths(model: Model, widths: unknown): Array<[string, number]> {
  const current = channelWidths(model);
  if (Object.keys(current).length === 0) throw new TypeError(`Expected a ResNet for channel shrinking but received ${model.arch}`);
  return Object.entries(plainObject('widths', widths)).map(([name, width]) => {
    if (!(name in current)) throw new TypeError(`Expected a narrowable conv (${Object.keys(current)[0]}, …) for widths but received '${name}'`);
    return [name, integerInRange(`widths['${name}']`, width, 1, current[name])];
  });
}

/**
 * Structured pruning that shrinks a ResNet: in each block, the round(amount x C) output channels of
 * conv1 (and a Bottleneck's conv2) with the smallest L2 norm go (LnStructured's choice; the
 * masked weight's norm where the conv is pruned, so channels a mask zeroed go first), with their
 * BatchNorm entries and the next conv's input channels. The result is a smaller dense network,
 * state_dict names unchanged. Resolves with the new widths.
 */
export async function shrinkChannels(model: Model, options: { amount: number }): Promise<Record<string, number>> {
  checkModel(model);
  knownKeys('shrink options', plainObject('shrink options', options), ['amount']);
  const amount = numberInRange('amount', options.amount, 0, 1);
  const widths = Object.entries(channelWidths(model)).map(([name, width]): [string, number] => [name, width - roundHalfEven(amount * width)]);
  if (widths.length === 0) throw new TypeError(`Expected a ResNet for channel shrinking but received ${model.arch}`);
  const empty = widths.find(([, width]) => width < 1);
  if (empty) throw new RangeError(`Expected an amount that leaves each conv a channel but ${amount} removes all of '${empty[0]}'`);
  try {
    await native().shrinkChannels(model.native, widths, true);
  } finally {
    model.structureChanged();
  }
  return channelWidths(model);
}

/**
 * Gives a model the widths of a shrunk one (the first channels kept): how a fresh model takes a
 * shrunk checkpoint's shapes before its state_dict is loaded.
 */
export async function resizeChannels(model: Model, widths: Record<string, number>): Promise<void> {
  checkModel(model);
  const entries = checkWidths(model, widths);
  try {
    await native().shrinkChannels(model.native, entries, false);
  } finally {
    model.structureChanged();
  }
}

/** The widths a (possibly shrunk) state_dict of this architecture has: the first dim of each narrowable conv's weight. */
export function widthsIn(model: Model, stateDict: Map<string, { shape: number[] }>): Record<string, number> {
  const widths: Record<string, number> = {};
  for (const name of Object.keys(channelWidths(model))) {
    const weight = stateDict.get(`${name}.weight`) ?? stateDict.get(`${name}.weight_orig`);
    if (weight) widths[name] = weight.shape[0];
  }
  return widths;
}
