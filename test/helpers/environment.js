// Jest runs each test file in its own vm realm, but objects made by the native addon (TypedArrays,
// Errors, Promises) come from Node's main realm, so `instanceof Float32Array` or `toThrow(Error)`
// would fail in tests while passing for users. Share the main realm's built-ins with the tests.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Float32Array', 'Float64Array', 'Int8Array', 'Int16Array', 'Int32Array',
  'Uint8Array', 'Uint8ClampedArray', 'Uint16Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array',
  'Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError',
  'Array', 'Object', 'Promise', 'Map', 'Set', 'Buffer',
];

class SharedBuiltinsEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = SharedBuiltinsEnvironment;
