// multipart/form-data parsing for uploads: fields, files, binary data, and malformed bodies.
import { MultipartError, multipartBoundary, parseMultipart } from '../../lib/serve/multipart';
import { multipartBody } from '../helpers/http-client';

test('the boundary from the Content-Type, quoted or not; other types have none', () => {
  expect(multipartBoundary('multipart/form-data; boundary=abc123')).toBe('abc123');
  expect(multipartBoundary('Multipart/Form-Data; charset=utf-8; boundary="a b:c"')).toBe('a b:c');
  expect(multipartBoundary('image/jpeg')).toBeUndefined();
  expect(multipartBoundary(undefined)).toBeUndefined();
  expect(() => multipartBoundary('multipart/form-data')).toThrow(MultipartError);
});

test('parts with names, filenames, types and exact binary bytes (CRLFs and dashes inside included)', () => {
  const binary = Buffer.from([0xff, 0xd8, 0x0d, 0x0a, 0x2d, 0x2d, 0x00, 0x0d, 0x0a]);
  const { body, contentType } = multipartBody([
    { name: 'note', data: 'hello' },
    { name: 'image', filename: 'x.jpg', contentType: 'image/jpeg', data: binary },
    { name: 'empty', filename: 'empty.bin', data: '' },
  ]);
  const parts = parseMultipart(body, multipartBoundary(contentType)!);
  expect(parts.map((p) => [p.name, p.filename, p.contentType, p.data.toString('hex')])).toEqual([
    ['note', null, null, Buffer.from('hello').toString('hex')],
    ['image', 'x.jpg', 'image/jpeg', binary.toString('hex')],
    ['empty', 'empty.bin', null, ''],
  ]);
});

test('malformed bodies say what is wrong', () => {
  const { body } = multipartBody([{ name: 'f', filename: 'a.jpg', data: 'abc' }], 'B');
  expect(() => parseMultipart(Buffer.from('no delimiters here'), 'B')).toThrow(/no '--B' delimiter/);
  expect(() => parseMultipart(body.subarray(0, body.length - 12), 'B')).toThrow(/not closed by a delimiter/);
  expect(() => parseMultipart(Buffer.from('--B\r\nContent-Disposition: form-data'), 'B')).toThrow(/no end of headers/);
  expect(() => parseMultipart(Buffer.from('--Bxx'), 'B')).toThrow(/not followed by a line break/);
});
