// SVG building blocks shared by the charts: escaped text elements, the document wrapper, number
// rounding for coordinates, text-width estimates, and rasterising an SVG to PNG with sharp.

import sharp from 'sharp';

import { escapeXml } from '../../utils/escape';
import { invalid } from '../../utils/validate';

export const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";

/** Estimated width of a line of text: 0.6 em per character, close for DejaVu Sans. */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

/** The text cut to maxChars characters, ending in an ellipsis when cut. */
export function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, Math.max(1, maxChars - 1))}…`;
}

/** A coordinate rounded to 0.01 px, as written into the SVG. */
export function r(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  rotate?: number;
  /** Vertical alignment of y: the baseline, or the middle of the text's x-height. */
  middle?: boolean;
  halo?: boolean;
}

/** A <text> element; the content is XML-escaped. */
export function text(x: number, y: number, content: string, o: TextOptions = {}): string {
  const size = o.size ?? 12;
  const yy = o.middle ? y + size * 0.35 : y;
  const attrs =
    `font-size="${r(size)}" text-anchor="${o.anchor ?? 'start'}"` +
    (o.weight === 'bold' ? ' font-weight="bold"' : '') +
    (o.rotate ? ` transform="rotate(${o.rotate} ${r(x)} ${r(y)})"` : '');
  const body = escapeXml(content);
  // For rotated text, shift along the rotated baseline's normal instead of y.
  const [tx, ty] = o.rotate && o.middle ? rotateOffset(x, y, size * 0.35, o.rotate) : [x, yy];
  const halo = o.halo
    ? `<text x="${r(tx)}" y="${r(ty)}" ${attrs} fill="white" stroke="white" stroke-width="3" stroke-opacity="0.75" stroke-linejoin="round">${body}</text>`
    : '';
  return `${halo}<text x="${r(tx)}" y="${r(ty)}" ${attrs} fill="${o.fill ?? '#222'}">${body}</text>`;
}

function rotateOffset(x: number, y: number, d: number, degrees: number): [number, number] {
  // The offset (0, d) in the text's own frame, expressed in the page frame.
  const a = (degrees * Math.PI) / 180;
  return [x - d * Math.sin(a), y + d * Math.cos(a)];
}

/** The <svg> document around `body`, on a white background. */
export function svgDocument(width: number, height: number, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${escapeXml(FONT_FAMILY)}">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`
  );
}

/** PNG bytes of an SVG document. */
export async function rasterise(svg: string): Promise<Buffer> {
  if (typeof svg !== 'string' || !svg.includes('<svg')) throw invalid('an SVG document string', 'svg', svg);
  return sharp(Buffer.from(svg, 'utf8'), { limitInputPixels: 20000 * 20000 }).png().toBuffer();
}
