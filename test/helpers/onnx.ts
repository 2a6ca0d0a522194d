// ONNX files in tests: run them with onnxruntime-node, read them back with the same onnx.proto the
// exporter writes with, and validate them with ONNX's own checker where the system Python has the
// onnx package (Debian's python3-onnx 1.12: IR version 8, opsets up to 17).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import * as protobuf from 'protobufjs';
import { ONNX_PROTO } from '../../lib/export/onnx-proto';
import { assertPresent, prerequisite } from './prerequisite';
import { TORCH_PYTHON } from './python';

function pythonEnv(): NodeJS.ProcessEnv {
  const { PYTHONHOME: _home, PYTHONPATH: _path, ...env } = process.env;
  return env;
}

function onnxMissing(): string | null {
  if (!fs.existsSync(TORCH_PYTHON)) return `${TORCH_PYTHON} does not exist`;
  const probe = spawnSync(TORCH_PYTHON, ['-c', 'import onnx'], { encoding: 'utf8', env: pythonEnv(), timeout: 120_000 });
  if (probe.error) return `${TORCH_PYTHON} could not run: ${probe.error.message}`;
  if (probe.status !== 0) return `${TORCH_PYTHON} cannot import onnx (apt-get install python3-onnx)`;
  return null;
}

/** ONNX's checker as a prerequisite (announces a skip once, when the test file loads). */
export const onnxChecker = prerequisite("ONNX's checker", onnxMissing());

// check_model(path, full_check=True), except that ONNX 1.12 writes the shape-inferred model back over
// the file it checks (infer_shapes_path's default output): the same two steps, the output discarded.
const CHECK_SCRIPT = `
import os, sys, onnx
onnx.checker.check_model(sys.argv[1])
onnx.shape_inference.infer_shapes_path(sys.argv[1], os.devnull, check_type=True, strict_mode=True)
`;

/**
 * ONNX's checker, full check (strict shape and type inference too). Returns false when skipped for
 * want of the onnx package; throws with Python's message when the file fails.
 */
export function checkOnnxFile(file: string): boolean {
  if (onnxChecker.missing !== null) {
    assertPresent(onnxChecker); // throws only where CI requires the checker
    return false;
  }
  const result = spawnSync(TORCH_PYTHON, ['-c', CHECK_SCRIPT, file], { encoding: 'utf8', env: pythonEnv(), timeout: 600_000 });
  if (result.error) throw new Error(`${TORCH_PYTHON} failed to run: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`ONNX's checker rejected ${file}:\n${result.stderr}`);
  return true;
}

/** The decoded onnx.ModelProto of a file or its bytes, as plain objects (int64 as numbers, bytes as Buffers). */
export function readOnnxModel(fileOrBytes: string | Uint8Array): Record<string, any> {
  const ModelProto = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  const message = ModelProto.decode(typeof fileOrBytes === 'string' ? fs.readFileSync(fileOrBytes) : fileOrBytes);
  return ModelProto.toObject(message, { longs: Number, defaults: false, arrays: true });
}

export function metadataOf(model: Record<string, any>): Record<string, string> {
  return Object.fromEntries((model.metadata_props as Array<{ key: string; value: string }>).map((p) => [p.key, p.value]));
}

/** Runs an ONNX session on one float32 NCHW batch; resolves with the output's values and shape. */
export async function runOnnx(session: ort.InferenceSession, images: Float32Array, shape: number[]): Promise<{ values: Float32Array; dims: readonly number[] }> {
  const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', images, shape) });
  const logits = outputs[session.outputNames[0]];
  return { values: logits.data as Float32Array, dims: logits.dims };
}

/** max|actual - expected| / max|expected|: the error relative to the scale of the logits. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`lengths differ: ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}
