export { createPredictionServer, normalizeServeOptions } from './server';
export type { PredictionServer, ServeOptions } from './server';
export { runInfo } from './run-info';
export type { RunInfo } from './run-info';
export { renderPage } from './page';
export { SerialQueue } from './queue';
export { parseMultipart, multipartBoundary, MultipartError } from './multipart';
export type { FormPart } from './multipart';
