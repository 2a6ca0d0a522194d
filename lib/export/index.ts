export { exportOnnx, onnxModelBytes, ONNX_OPSETS, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from './onnx';
export type { OnnxExportOptions, OnnxExportResult } from './onnx';
