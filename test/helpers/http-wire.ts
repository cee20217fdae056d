/**
 * HTTP/1.1 as bytes on the wire, for the raw-socket clients and servers of the tests: a head's
 * start line and fields, and a chunked body.
 */

const CRLF = '\r\n';

export interface ParsedHead {
  /** The first line: request line or status line. */
  startLine: string;
  /** Header names lower-cased, repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Header fields as sent. */
  rawHeaders: [string, string][];
}

export function parseHead(text: string): ParsedHead {
  const lines = text.split(CRLF);
  const headers: Record<string, string> = {};
  const rawHeaders: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = (colon === -1 ? line : line.slice(0, colon)).trim();
    const value = colon === -1 ? '' : line.slice(colon + 1).trim();
    rawHeaders.push([name, value]);
    const key = name.toLowerCase();
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
  }
  return { startLine: lines[0], headers, rawHeaders };
}

export interface Dechunked {
  body: Buffer;
  /** The last chunk (and its trailer section) arrived. */
  complete: boolean;
  trailers: Record<string, string>;
  /** The offset in the buffer after the chunked body, once complete (-1 before). */
  end: number;
}

/** Decodes as much of a chunked body as `buf` holds, from `start`. */
export function decodeChunked(buf: Buffer, start = 0): Dechunked {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const eol = buf.indexOf(CRLF, at);
    if (eol === -1) break;
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0], 16);
    if (!Number.isFinite(size)) break;
    if (size === 0) {
      // The trailer section (possibly empty) ends with a blank line.
      const endOfTrailers = buf.indexOf(CRLF + CRLF, eol);
      if (endOfTrailers === -1) break;
      const fields = endOfTrailers > eol ? buf.subarray(eol + 2, endOfTrailers).toString('latin1') : '';
      return { body: Buffer.concat(parts), complete: true, trailers: parseHead(CRLF + fields).headers, end: endOfTrailers + 4 };
    }
    if (eol + 2 + size + 2 > buf.length) {
      parts.push(buf.subarray(eol + 2, Math.min(buf.length, eol + 2 + size)));
      break;
    }
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return { body: Buffer.concat(parts), complete: false, trailers: {}, end: -1 };
}
