// CRC-32C (Castagnoli), as TFRecord / TensorBoard event files use it.
//
// Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (the iSCSI / RFC 3720
// variant). Slicing-by-8 over eight 256-entry tables: about 1 GB/s in V8, plenty for event files.
// npm has maintained packages for this (@aws-crypto/crc32c, fast-crc32c with a native fast path),
// but the function is 40 lines and a dependency for it would not pay its way here.

const POLY = 0x82f63b78;

const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[0][n];
    for (let t = 1; t < 8; t++) {
      c = (tables[0][c & 0xff] ^ (c >>> 8)) >>> 0;
      tables[t][n] = c;
    }
  }
  return tables;
})();

/**
 * CRC-32C of `data`. Pass a previous result as `crc` to continue over a further chunk:
 * crc32c(b, crc32c(a)) === crc32c(concat(a, b)).
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  for (; i < end8; i += 8) {
    const lo = (c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    c =
      t7[lo & 0xff] ^
      t6[(lo >>> 8) & 0xff] ^
      t5[(lo >>> 16) & 0xff] ^
      t4[lo >>> 24] ^
      t3[data[i + 4]] ^
      t2[data[i + 5]] ^
      t1[data[i + 6]] ^
      t0[data[i + 7]];
  }
  for (; i < n; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The masked CRC stored in TFRecord framing: rotate right by 15 and add a constant. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
