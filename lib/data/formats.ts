// Recognising image files by their content (magic bytes), not their names.
// The Caltech-101 archive itself has a JPEG called `BACKGROUND_Google/tmp`.

export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'bmp';

export const IMAGE_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'gif', 'webp', 'tiff', 'bmp'];

/** How many leading bytes `sniffImageFormat` needs to see. */
export const SNIFF_BYTES = 16;

/** The image format a file's first bytes announce, or undefined when none of ours matches. */
export function sniffImageFormat(head: Uint8Array): ImageFormat | undefined {
  const b = head;
  const n = b.length;
  if (n >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (
    n >= 8 &&
    b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 &&
    b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a
  ) {
    return 'png';
  }
  const gif = ascii(b, 0, 6);
  if (gif === 'GIF87a' || gif === 'GIF89a') return 'gif';
  if (n >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  if (n >= 4 && b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00) return 'tiff'; // II*\0
  if (n >= 4 && b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a) return 'tiff'; // MM\0*
  if (n >= 4 && b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2b && b[3] === 0x00) return 'tiff'; // BigTIFF
  if (n >= 4 && b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2b) return 'tiff';
  // BMP: "BM", then a DIB header size we know (core 12, info 40, v2 52, v3 56, v4 108, v5 124)
  if (n >= 18 && b[0] === 0x42 && b[1] === 0x4d) {
    const dib = b[14] | (b[15] << 8) | (b[16] << 16) | (b[17] << 24);
    if ([12, 40, 52, 56, 64, 108, 124].includes(dib)) return 'bmp';
  }
  return undefined;
}

/** The first bytes as hex, for error messages ("starts with 3c 21 44 4f"). */
export function hexHead(head: Uint8Array, count = 8): string {
  return Array.from(head.subarray(0, count), (x) => x.toString(16).padStart(2, '0')).join(' ');
}

function ascii(b: Uint8Array, start: number, length: number): string | undefined {
  if (b.length < start + length) return undefined;
  return String.fromCharCode(...b.subarray(start, start + length));
}
