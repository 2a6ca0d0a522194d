// multipart/form-data bodies (what an HTML form or `curl -F file=@cat.jpg` sends), parsed in memory:
// the server has already read the whole, size-limited body. RFC 7578; only what image uploads need:
// each part's name, filename and bytes.

export interface FormPart {
  /** The form field's name. */
  name: string | null;
  /** The uploaded file's name; null for a plain field. */
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

export class MultipartError extends Error {
  constructor(message: string) {
    super(`Malformed multipart/form-data body: ${message}`);
    this.name = 'MultipartError';
  }
}

/** The boundary parameter of a multipart/form-data Content-Type; undefined for another type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!m) throw new MultipartError(`the Content-Type '${contentType}' has no boundary parameter`);
  return m[1] ?? m[2];
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

export function parseMultipart(body: Buffer, boundary: string): FormPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  if (at < 0) throw new MultipartError(`no '--${boundary}' delimiter in the body`);
  const parts: FormPart[] = [];
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString('latin1') === '--') return parts; // the closing delimiter
    if (!body.subarray(at, at + 2).equals(CRLF)) throw new MultipartError('a delimiter is not followed by a line break');
    const headersStart = at + 2;
    const headersEnd = body.indexOf(HEADER_END, headersStart);
    if (headersEnd < 0) throw new MultipartError(`part ${parts.length + 1} has no end of headers`);
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), headersEnd + 4);
    if (next < 0) throw new MultipartError(`part ${parts.length + 1} is not closed by a delimiter (a truncated body?)`);
    parts.push(partOf(body.subarray(headersStart, headersEnd).toString('utf8'), body.subarray(headersEnd + 4, next)));
    at = next + 2;
  }
}

function partOf(headerText: string, data: Buffer): FormPart {
  const headers = new Map<string, string>();
  for (const line of headerText.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get('content-disposition') ?? '';
  const param = (key: string): string | null => {
    const m = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(disposition) ?? new RegExp(`;\\s*${key}=([^;\\s]+)`, 'i').exec(disposition);
    return m ? m[1].replace(/\\(.)/g, '$1') : null;
  };
  return { name: param('name'), filename: param('filename'), contentType: headers.get('content-type') ?? null, data };
}
