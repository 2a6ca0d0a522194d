// Downloads over Node's built-in http/https: files (resumable, verified), torchvision's ImageNet
// weights into PyTorch's hub cache, and the Caltech-101 archive.
export {
  downloadFile, hashFile, resolveRedirect, DownloadError, ChecksumError, MAX_REDIRECTS,
  progressBar, formatProgress, formatBytes, formatDuration,
} from './fetch-file';
export type { DownloadOptions, TransferOptions, DownloadResult, ProgressCallback, ProgressBar, ProgressBarOptions, ProgressStream } from './fetch-file';
export {
  ensureWeights, hubCacheDir, weightsEntry, hashPrefixFromName, IMAGENET_WEIGHTS, WEIGHTS_ARCHITECTURES, WEIGHTS_BASE_URL_ENV,
} from './weights';
export type { WeightsArch, WeightsEntry, WeightsSpec, EnsureWeightsOptions } from './weights';
export {
  downloadCaltech101, findCaltechTarball, CALTECH101_MD5, CALTECH101_ARCHIVE, CALTECH101_OFFICIAL_ZIP_URL,
  CALTECH101_TORCHVISION_URL, CALTECH101_MARKER,
} from './caltech101';
export type { DownloadCaltech101Options, Caltech101Download } from './caltech101';
export { extractTarGz, extractTarStream, safeEntryPath, TarError } from './tar';
export type { TarExtractOptions, TarExtractResult } from './tar';
export { listZip, extractZipEntry, crc32, ZipError } from './zip';
export type { ZipEntry } from './zip';
