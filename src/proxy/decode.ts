/**
 * Reading a compressed response for measurement. The gateway asks Ollama for identity encoding on
 * the instrumented routes, and Ollama never compresses; but a compressing proxy in front of it may
 * still send gzip, deflate or brotli. The parser must then see the decoded bytes, while the client
 * gets what it was sent (or, when the stream is rewritten, the decoded stream). Decoding is bounded
 * in total (`MAX_DECODED_BYTES`) and per encoded byte (`MAX_DECODE_RATIO`): past either, nothing
 * more is decoded (see the tap for what the client then gets).
 */
import zlib from 'node:zlib';

/** The most decoded bytes read from one response (a compression bomb stops here). */
export const MAX_DECODED_BYTES = 256 * 1024 * 1024;

/**
 * Decoded bytes allowed per encoded byte received, past `DECODE_SLACK_BYTES`: what bounds the CPU
 * one encoded byte can buy (inflating costs per byte out). gzip reaches ~1,000:1 on repeated
 * bytes; a stream compressed as it is written (flushed per event, as a proxy compressing a stream must) stays far below 32:1.
 */
export const MAX_DECODE_RATIO = 32;
export const DECODE_SLACK_BYTES = 1024 * 1024;

/** Whether `decoded` bytes out of `encoded` bytes in is past what decoding is allowed. */
export function decodedPastBound(decoded: number, encoded: number): boolean {
  return decoded > MAX_DECODED_BYTES || decoded > DECODE_SLACK_BYTES + MAX_DECODE_RATIO * encoded;
}

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
