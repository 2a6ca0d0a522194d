// A small BMP reader: sharp's prebuilt libvips has no BMP loader, PIL (and so torchvision) has.
// Supports the uncompressed variants found in practice: 1/4/8-bit palette, 16-bit (5-5-5 or
// bit fields), 24-bit, 32-bit (BI_RGB or bit fields), bottom-up and top-down rows.
// RLE-compressed and embedded JPEG/PNG BMPs are refused with a clear error.
// Output: RGB, 3 channels, HWC, uint8. An alpha channel, if any, is dropped (like PIL's convert('RGB')).

export interface RawRgb {
  data: Buffer;
  width: number;
  height: number;
}

const MAX_SIDE = 1 << 15;

export function decodeBmp(buf: Buffer): RawRgb {
  const fail = (why: string): never => {
    throw new Error(`Unsupported or corrupt BMP: ${why}`);
  };
  if (buf.length < 26 || buf[0] !== 0x42 || buf[1] !== 0x4d) fail('missing "BM" header');
  const pixelOffset = buf.readUInt32LE(10);
  const dibSize = buf.readUInt32LE(14);
  let width: number;
  let height: number;
  let bitCount: number;
  let compression = 0;
  let paletteSize = 0;
  let masks: [number, number, number] | undefined;
  let paletteEntryBytes = 4;
  if (dibSize === 12) {
    width = buf.readUInt16LE(18);
    height = buf.readInt16LE(20);
    bitCount = buf.readUInt16LE(24);
    paletteEntryBytes = 3;
  } else {
    if (dibSize < 40 || buf.length < 14 + 40) fail(`header size ${dibSize}`);
    width = buf.readInt32LE(18);
    height = buf.readInt32LE(22);
    bitCount = buf.readUInt16LE(28);
    compression = buf.readUInt32LE(30);
    paletteSize = buf.readUInt32LE(46);
    if (compression === 3 || compression === 6) {
      // BI_BITFIELDS / BI_ALPHABITFIELDS: masks follow a 40-byte header, or sit inside v2+ headers
      const at = 14 + 40;
      if (buf.length < at + 12) fail('truncated colour masks');
      masks = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4), buf.readUInt32LE(at + 8)];
    } else if (compression !== 0) {
      fail(`compression type ${compression} (only uncompressed BMPs are supported; convert it to PNG)`);
    }
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width <= 0 || height <= 0 || width > MAX_SIDE || height > MAX_SIDE) fail(`size ${width}x${height}`);
  if (![1, 4, 8, 16, 24, 32].includes(bitCount)) fail(`${bitCount} bits per pixel`);

  let palette: Uint8Array | undefined;
  if (bitCount <= 8) {
    const entries = paletteSize || 1 << bitCount;
    const start = 14 + dibSize + (compression === 3 && dibSize === 40 ? 12 : 0);
    if (start + entries * paletteEntryBytes > buf.length) fail('truncated palette');
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < Math.min(entries, 256); i++) {
      const p = start + i * paletteEntryBytes;
      palette[i * 3] = buf[p + 2];
      palette[i * 3 + 1] = buf[p + 1];
      palette[i * 3 + 2] = buf[p];
    }
  }
  if (bitCount === 16 && !masks) masks = [0x7c00, 0x03e0, 0x001f];

  const stride = Math.floor((bitCount * width + 31) / 32) * 4;
  if (pixelOffset + stride * height > buf.length) fail('pixel data is truncated');
  const out = Buffer.allocUnsafe(width * height * 3);
  const channel = masks?.map(maskInfo);
  for (let y = 0; y < height; y++) {
    const row = pixelOffset + (topDown ? y : height - 1 - y) * stride;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      if (palette) {
        const bit = x * bitCount;
        const byte = buf[row + (bit >> 3)];
        const index = (byte >> (8 - bitCount - (bit & 7))) & ((1 << bitCount) - 1);
        out[o] = palette[index * 3];
        out[o + 1] = palette[index * 3 + 1];
        out[o + 2] = palette[index * 3 + 2];
      } else if (channel) {
        const v = bitCount === 16 ? buf.readUInt16LE(row + x * 2) : buf.readUInt32LE(row + x * 4);
        out[o] = channel[0](v);
        out[o + 1] = channel[1](v);
        out[o + 2] = channel[2](v);
      } else {
        const p = row + x * (bitCount >> 3);
        out[o] = buf[p + 2];
        out[o + 1] = buf[p + 1];
        out[o + 2] = buf[p];
      }
    }
  }
  return { data: out, width, height };
}

/** Extracts a channel given its bit mask and scales it to 0-255. */
function maskInfo(mask: number): (v: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  return (v) => Math.round((((v & mask) >>> shift) * 255) / max);
}
