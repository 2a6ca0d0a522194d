import { escapeHtml, escapeXml } from '../../lib/utils/escape';
import * as report from '../../lib/report';

describe('escapeXml / escapeHtml', () => {
  test('escapes the five markup characters', () => {
    expect(escapeXml(`<a href="x">&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;');
  });

  test('escapes an existing entity again (text is never taken as markup)', () => {
    expect(escapeXml('&amp; &#39;')).toBe('&amp;amp; &amp;#39;');
  });

  test('leaves other text alone, including non-ASCII', () => {
    expect(escapeXml('Leopards → Faces_easy, café 100%')).toBe('Leopards → Faces_easy, café 100%');
    expect(escapeXml('')).toBe('');
  });

  test('converts non-strings with String()', () => {
    expect(escapeXml(42)).toBe('42');
    expect(escapeXml(null)).toBe('null');
    expect(escapeXml(undefined)).toBe('undefined');
  });

  test('decoding the five entities gives the text back', () => {
    const original = `"'<>&&lt;'"\n<svg onload='x'>`;
    const decoded = escapeXml(original)
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    expect(decoded).toBe(original);
    expect(escapeXml(original)).not.toMatch(/[<>"']/);
  });

  test('one function under both names, both exported from lib/report', () => {
    expect(escapeHtml).toBe(escapeXml);
    expect(report.escapeHtml).toBe(escapeXml);
    expect(report.escapeXml).toBe(escapeXml);
  });
});
