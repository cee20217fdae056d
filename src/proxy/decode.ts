/**
 * Reading a compressed response for measurement. The gateway asks Ollama for identity encoding on
 * the instrumented routes, and Ollama never compresses; but a compressing proxy in front of it may
 * still send gzip, deflate or brotli. The parser must then see the decoded bytes, while the client
 * gets what it was sent. Decoding is bounded: past `MAX_DECODED_BYTES` the rest is not decoded.
 */
import zlib from 'node:zlib';

/** The most decoded bytes read for measurement from one response (a compression bomb stops here). */
export const MAX_DECODED_BYTES = 256 * 1024 * 1024;

/** The `Content-Encoding` of a response, lower-cased; empty for none or identity. */
export function contentEncoding(header: string | string[] | undefined): string {
  const value = (Array.isArray(header) ? header.join(',') : (header ?? '')).trim().toLowerCase();
  return value === 'identity' ? '' : value;
}

/** A decoder for `encoding`, or undefined when Node has none for it (then nothing can be measured). */
export type Decoder = zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress;

export function decoderFor(encoding: string): Decoder | undefined {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return undefined;
  }
}
