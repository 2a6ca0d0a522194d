// Escaping text for markup: one function for SVG (XML) and HTML, text and quoted attributes alike.

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * `&`, `<`, `>`, `"` and `'` as entities (`&#39;` for the apostrophe, which HTML 4 lacks a name
 * for), so the text is safe in element content and in single- or double-quoted attributes of both
 * XML/SVG and HTML. Anything else is converted with String() first.
 */
export function escapeXml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** The same function as escapeXml: what is safe in XML text and attributes is safe in HTML. */
export const escapeHtml = escapeXml;
