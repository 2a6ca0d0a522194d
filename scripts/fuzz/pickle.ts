// Pickles: an opcode walker (to find length fields and opcode boundaries), a tiny writer of the
// protocol-2 opcodes torch.save emits, crafted bombs (deep nesting, memo DAGs, huge lengths) and
// the opcode-aware mutator that zip and legacy .pth files both use for their pickles.
import { interestingValue, u32, u64, writeUInt } from './bytes';
import { generic } from './generic';
import type { Rng } from './rng';

interface PickleOp {
  pos: number;
  op: number;
  /** Where the length (counted ops) or value (fixed ops) field starts, and its width. */
  field?: { at: number; width: 1 | 2 | 4 | 8 };
  end: number;
}

const FIXED_ARG: Record<number, 1 | 2 | 4 | 8> = {
  0x80: 1, 0x95: 8, 0x4a: 4, 0x4b: 1, 0x4d: 2, 0x47: 8, 0x68: 1, 0x6a: 4, 0x71: 1, 0x72: 4, 0x82: 1, 0x83: 2, 0x84: 4,
};
const COUNTED_ARG: Record<number, 1 | 4 | 8> = {
  0x8a: 1, 0x8b: 4, 0x55: 1, 0x54: 4, 0x8c: 1, 0x58: 4, 0x8d: 8, 0x43: 1, 0x42: 4, 0x8e: 8, 0x96: 8,
};
const LINE_ARGS: Record<number, number> = { 0x49: 1, 0x46: 1, 0x4c: 1, 0x53: 1, 0x56: 1, 0x67: 1, 0x70: 1, 0x50: 1, 0x63: 2, 0x69: 2 };

/** The opcodes of the pickle starting at `start`, up to and including STOP (or until it breaks). */
export function pickleOps(buf: Buffer, start = 0): { ops: PickleOp[]; end: number } {
  const ops: PickleOp[] = [];
  let pos = start;
  while (pos < buf.length) {
    const op = buf[pos];
    const rec: PickleOp = { pos, op, end: pos + 1 };
    if (op in FIXED_ARG) {
      rec.field = { at: pos + 1, width: FIXED_ARG[op] };
      rec.end = pos + 1 + FIXED_ARG[op];
    } else if (op in COUNTED_ARG) {
      const w = COUNTED_ARG[op];
      if (pos + 1 + w > buf.length) return { ops, end: -1 };
      const n = w === 1 ? buf[pos + 1] : w === 4 ? buf.readInt32LE(pos + 1) : Number(buf.readBigUInt64LE(pos + 1));
      if (n < 0) return { ops, end: -1 };
      rec.field = { at: pos + 1, width: w };
      rec.end = pos + 1 + w + n;
    } else if (op in LINE_ARGS) {
      let at = pos + 1;
      for (let l = 0; l < LINE_ARGS[op]; l++) {
        const nl = buf.indexOf(0x0a, at);
        if (nl < 0) return { ops, end: -1 };
        at = nl + 1;
      }
      rec.end = at;
    }
    if (rec.end > buf.length) return { ops, end: -1 };
    ops.push(rec);
    pos = rec.end;
    if (op === 0x2e) return { ops, end: pos };
  }
  return { ops, end: -1 };
}

/** Emits protocol-2 opcodes the way torch.save writes them. */
export class PickleWriter {
  private parts: Buffer[] = [];
  raw(bytes: Buffer | string | number[]): this {
    this.parts.push(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes));
    return this;
  }
  proto(v = 2): this { return this.raw([0x80, v]); }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(Buffer.concat([Buffer.from([0x58]), u32(b.length), b]));
  }
  int(v: number | bigint): this {
    const n = BigInt(v);
    if (n >= 0n && n < 256n) return this.raw([0x4b, Number(n)]);
    if (n >= -(2n ** 31n) && n < 2n ** 31n) return this.raw(Buffer.concat([Buffer.from([0x4a]), u32(Number(BigInt.asUintN(32, n)))]));
    return this.raw(Buffer.concat([Buffer.from([0x8a, 8]), u64(n)]));
  }
  global(module: string, name: string): this { return this.raw(`c${module}\n${name}\n`); }
  mark(): this { return this.raw('('); }
  tuple(): this { return this.raw('t'); }
  emptyTuple(): this { return this.raw(')'); }
  emptyDict(): this { return this.raw('}'); }
  emptyList(): this { return this.raw(']'); }
  reduce(): this { return this.raw('R'); }
  setitems(): this { return this.raw('u'); }
  bool(v: boolean): this { return this.raw([v ? 0x88 : 0x89]); }
  stop(): Buffer { this.raw('.'); return Buffer.concat(this.parts); }
  ints(values: readonly (number | bigint)[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
}

export interface TensorSpec {
  name: string;
  key: string;
  storage?: string; // e.g. 'FloatStorage'
  numel: number | bigint;
  offset?: number | bigint;
  sizes: (number | bigint)[];
  strides: (number | bigint)[];
}

/** An OrderedDict of tensors as torch.save pickles a state_dict (protocol 2). */
export function stateDictPickle(tensors: readonly TensorSpec[], wrap?: (w: PickleWriter) => void): Buffer {
  const w = new PickleWriter().proto();
  wrap?.(w);
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const t of tensors) {
    w.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', t.storage ?? 'FloatStorage').str(t.key).str('cpu').int(t.numel).tuple().raw('Q');
    w.int(t.offset ?? 0).ints(t.sizes).ints(t.strides).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
    w.tuple().reduce();
  }
  w.setitems();
  return w.stop();
}

/** Nesting `depth` containers deep. */
function deepPickle(rng: Rng, depth: number): Buffer {
  const w = new PickleWriter().proto();
  switch (rng.int(4)) {
    case 0: // [[[...]]]: lists appended bottom-up
      for (let i = 0; i < depth; i++) w.emptyList();
      for (let i = 1; i < depth; i++) w.raw('a');
      break;
    case 1: // ((((...)))): MARK ... TUPLE
      for (let i = 0; i < depth; i++) w.mark();
      for (let i = 0; i < depth; i++) w.tuple();
      break;
    case 2: // {'a': {'a': ...}}
      for (let i = 0; i < depth; i++) w.emptyDict().str('a');
      w.int(1);
      for (let i = 0; i < depth; i++) w.raw('s');
      break;
    default: // marks that are never closed
      for (let i = 0; i < depth; i++) w.mark();
      w.int(1);
  }
  return w.stop();
}

/** A list that holds its predecessor twice, `levels` times: 2^levels values for anyone walking it. */
function dagBombPickle(levels: number, tensor: boolean): Buffer {
  const w = new PickleWriter().proto();
  if (tensor) {
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(1).tuple().raw('Q');
    w.int(0).ints([1]).ints([1]).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  } else {
    w.emptyList();
  }
  w.raw([0x71, 0]); // BINPUT 0
  for (let i = 0; i < levels; i++) {
    w.raw('0').mark().raw(Buffer.from([0x6a])).raw(u32(i)).raw(Buffer.from([0x6a])).raw(u32(i)).raw('l'); // POP, [m[i], m[i]]
    w.raw(Buffer.from([0x72])).raw(u32(i + 1)); // LONG_BINPUT i+1
  }
  // a state_dict-looking wrapper so that the checkpoint/state_dict code walks it too
  return Buffer.concat([Buffer.from([0x80, 0x02, 0x7d, 0x58]), u32(10), Buffer.from('state_dict'), w.stop().subarray(2, -1), Buffer.from('s.')]);
}

/**
 * torch.save(model): module objects `levels` deep, each holding the one below under `fanOut` names
 * (memo references), with a parameter at the bottom: long dotted keys, or many of them.
 */
function modulePickle(levels: number, fanOut: number): Buffer {
  const w = new PickleWriter().proto();
  const odict = (items?: () => void) => {
    w.global('collections', 'OrderedDict').emptyTuple().reduce();
    if (items) { w.mark(); items(); w.setitems(); }
  };
  const module = (cls: [string, string], params?: () => void, children?: () => void) => {
    w.global(...cls).emptyTuple().raw([0x81]).emptyDict().mark().str('training').bool(true);
    w.str('_parameters'); odict(params);
    w.str('_buffers'); odict();
    w.str('_non_persistent_buffers_set').global('__builtin__', 'set').emptyList().raw([0x85]).reduce();
    w.str('_modules'); odict(children);
    w.setitems().raw('b').raw([0x71, 0]); // BUILD, BINPUT 0
  };
  module(['torch.nn.modules.linear', 'Linear'], () => {
    w.str('weight').global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(2).tuple().raw('Q');
    w.int(0).ints([2]).ints([1]).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  });
  for (let level = 1; level < levels; level++) {
    w.raw('0'); // POP: the child lives on in memo 0
    module(['torchvision.models.resnet', 'ResNet'], undefined, () => {
      for (let c = 0; c < fanOut; c++) w.str(String(c)).raw([0x68, 0]); // BINGET 0
    });
  }
  return w.stop();
}

/** Pickles that claim far more bytes than they hold. */
function hugeLengthPickle(rng: Rng): Buffer {
  const op = rng.pick([0x8d, 0x8e, 0x96, 0x58, 0x42, 0x54, 0x8b, 0x95]);
  const width = op in COUNTED_ARG ? COUNTED_ARG[op] : 8;
  const value = width === 8 ? rng.pick([2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 100n * 2n ** 30n, 2n ** 32n]) : BigInt(rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 0x7ffffff0]));
  const head = Buffer.concat([Buffer.from([0x80, 0x04, op]), width === 8 ? u64(value) : u32(Number(value))]);
  return Buffer.concat([head, rng.bytes(rng.int(64)), Buffer.from('.')]);
}

const PICKLE_SNIPPETS: Buffer[] = [
  '(', ')', ']', '}', 'N', 'a', 'e', 's', 'u', 't', 'l', 'd', 'R', 'b', 'Q', '0', '1', '2', '.', '\x85', '\x86', '\x87', '\x88', '\x89',
  '\x94', 'q\x00', 'h\x00', 'h\x01', 'r\xff\xff\xff\xff', 'j\xff\xff\xff\xff', 'g0\n', 'p0\n', 'K\x01', 'J\xff\xff\xff\x7f', 'M\xff\xff',
  '\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f', '\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01', '\x8b\xff\xff\xff\x7f',
  'X\xff\xff\xff\xff', '\x8d\x00\x00\x00\x00\x00\x00\x00\x80', '\x8e\xff\xff\xff\xff\xff\xff\xff\xff', '\x95\xff\xff\xff\xff\xff\xff\xff\xff',
  'ccollections\nOrderedDict\n', 'ctorch._utils\n_rebuild_tensor_v2\n', 'ctorch._utils\n_rebuild_parameter\n', 'ctorch\nFloatStorage\n',
  'ctorch\nLongStorage\n', 'ctorch\nSize\n', 'c_codecs\nencode\n', 'c__builtin__\nbytes\n', 'cos\nsystem\n', 'cbuiltins\neval\n',
  '\x8c\x0bcollections\x8c\x0bOrderedDict\x93', '\x8c\x02os\x8c\x06system\x93', 'X\x07\x00\x00\x00storage', 'X\x03\x00\x00\x00cpu',
  'I00\n', 'I01\n', 'I99999999999999999999\n', 'L-9223372036854775808L\n', 'F1e309\n', 'Fnan\n', "S'\\x00'\n", 'Vx\\u00e9\n', 'P0\n',
  '\x8f', '\x90', '\x91', '\x97', '\x98', 'i__main__\nX\n', 'o', '\x81', '\x92',
  // whole pickled models: module classes, their state's fields, protocol 0/1 object creation
  'ctorch.nn.modules.linear\nLinear\n', 'ctorchvision.models.resnet\nResNet\n', 'ctorch.nn.modules.module\nModule\n',
  'ccopy_reg\n_reconstructor\n', 'c__builtin__\nobject\n', 'c__builtin__\nset\n', 'c__main__\nMyNet\n',
  'X\x0b\x00\x00\x00_parameters', 'X\x08\x00\x00\x00_buffers', 'X\x08\x00\x00\x00_modules', 'X\x06\x00\x00\x00module',
].map((s) => Buffer.from(s, 'latin1'));

/** Opcode-aware mutation of one pickle. */
export function mutatePickle(rng: Rng, pkl: Buffer, others: readonly Buffer[]): Buffer {
  const { ops } = pickleOps(pkl);
  if (ops.length === 0) return generic(rng, pkl, others);
  const out = Buffer.from(pkl);
  const choice = rng.int(9);
  if (choice <= 1) {
    // a length or value field gets an interesting value
    const fielded = ops.filter((o) => o.field);
    if (fielded.length) {
      const o = rng.pick(fielded);
      writeUInt(out, o.field!.at, o.field!.width, interestingValue(rng, o.field!.width));
      return rng.chance(0.3) ? out.subarray(0, Math.min(out.length, o.end + rng.int(16))) : out;
    }
  }
  if (choice === 2) {
    // an integer argument (storage numel, offset, size, stride, memo index) becomes extreme
    const ints = ops.filter((o) => [0x4a, 0x4b, 0x4d, 0x8a].includes(o.op));
    if (ints.length) {
      const o = rng.pick(ints);
      const value = rng.pick([-1n, 0n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 40n, 2n ** 53n, 3n]);
      const w = new PickleWriter().int(value).stop().subarray(0, -1);
      return Buffer.concat([pkl.subarray(0, o.pos), w, pkl.subarray(o.end)]);
    }
  }
  if (choice === 3 || choice === 4) {
    // insert a snippet at an opcode boundary
    const at = rng.pick(ops).pos;
    const snippets = Array.from({ length: rng.range(1, 4) }, () => rng.pick(PICKLE_SNIPPETS));
    return Buffer.concat([pkl.subarray(0, at), ...snippets, pkl.subarray(at)]);
  }
  if (choice === 5) {
    // delete or duplicate a run of opcodes
    const i = rng.int(ops.length);
    const j = Math.min(ops.length - 1, i + rng.int(4));
    const run = pkl.subarray(ops[i].pos, ops[j].end);
    return rng.chance(0.5)
      ? Buffer.concat([pkl.subarray(0, ops[i].pos), pkl.subarray(ops[j].end)])
      : Buffer.concat([pkl.subarray(0, ops[j].end), run, run, pkl.subarray(ops[j].end)]);
  }
  if (choice === 6) {
    // swap a global for another (allowed or not)
    const globals = ops.filter((o) => o.op === 0x63);
    if (globals.length) {
      const o = rng.pick(globals);
      const g = rng.pick(PICKLE_SNIPPETS.filter((s) => s[0] === 0x63));
      return Buffer.concat([pkl.subarray(0, o.pos), g, pkl.subarray(o.end)]);
    }
  }
  if (choice === 7) {
    // a string argument changes (storage keys, dict keys, 'storage', 'cpu')
    const strs = ops.filter((o) => o.op === 0x58 || o.op === 0x8c);
    if (strs.length) {
      const o = rng.pick(strs);
      const text = Buffer.from(rng.pick(['', '../x', 'a/b', '0', '1', 'storage', 'cpu', 'cuda:0', '\u2603', 'x'.repeat(300), '\ud800']), 'utf8');
      const w = Buffer.concat([Buffer.from([0x58]), u32(text.length), text]);
      return Buffer.concat([pkl.subarray(0, o.pos), w, pkl.subarray(o.end)]);
    }
  }
  return generic(rng, pkl, others, 1);
}

/** A crafted pickle (deep, exponential, huge lengths, module objects, or a state_dict claiming too much). */
export function craftedPickle(rng: Rng): Buffer {
  switch (rng.int(6)) {
    case 0: return deepPickle(rng, rng.pick([50, 999, 1000, 1001, 5000, 100000]));
    case 1: return dagBombPickle(rng.pick([16, 20, 22, 23, 24, 25, 40]), rng.chance(0.5));
    case 2: return hugeLengthPickle(rng);
    case 3: return rng.chance(0.5) ? modulePickle(rng.pick([2, 50, 1000, 3000]), 1) : modulePickle(rng.pick([3, 6, 12]), rng.pick([4, 16, 64]));
    default: {
      // a state_dict whose tensors claim huge or overflowing storages, sizes and strides
      const big = (): bigint => rng.pick([2n ** 31n, 2n ** 40n, 2n ** 61n, 2n ** 62n, 2n ** 63n - 1n, 100n * 2n ** 30n, 0n, 1n]);
      const tensors: TensorSpec[] = Array.from({ length: rng.range(1, 3) }, (_, i) => ({
        name: `t${i}`,
        key: String(i),
        storage: rng.pick(['FloatStorage', 'DoubleStorage', 'LongStorage', 'ByteStorage', 'BoolStorage', 'HalfStorage']),
        numel: rng.chance(0.5) ? big() : 4n,
        offset: rng.chance(0.2) ? big() : 0n,
        sizes: rng.chance(0.5) ? [big(), big()] : [2n, 2n],
        strides: rng.chance(0.5) ? [big(), 1n] : [2n, 1n],
      }));
      return stateDictPickle(tensors);
    }
  }
}
