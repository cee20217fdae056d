/** Byte helpers shared by the parsers and the body reader. */

export const EMPTY = Buffer.alloc(0);

/** JSON's structural bytes, for the scanners that read JSON without decoding it. */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;

/** JSON white space (RFC 8259 §2). */
export const isBlank = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** The pieces as one buffer: the piece itself when there is one (no copy), else one copy of all. */
export function joinPieces(pieces: readonly Buffer[], size?: number): Buffer {
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, size);
}

/** True when `buf[at, end)` starts with `prefix`. */
export function startsWith(buf: Buffer, prefix: Buffer, at: number, end: number): boolean {
  return end - at >= prefix.length && buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

/**
 * Finds one byte sequence in the events of a chunk, asked about in order. `buf.indexOf(mark, start)`
 * runs to the end of the chunk, not of the event, so asking it once per event would scan a chunk of
 * many small events once per event; remembering the next occurrence scans it about once.
 */
export class Mark {
  private buf: Buffer = EMPTY;
  private at = -1;

  constructor(readonly bytes: Buffer) {}

  /** Where the mark first occurs in `buf` at or after `start`, or -1. Within one buffer, `start` only grows. */
  next(buf: Buffer, start: number): number {
    if (buf !== this.buf || (this.at !== -1 && this.at < start)) {
      this.buf = buf;
      this.at = buf.indexOf(this.bytes, start);
    }
    return this.at;
  }

  /** True when `buf[start, end)` contains the mark. */
  within(buf: Buffer, start: number, end: number): boolean {
    const at = this.next(buf, start);
    return at !== -1 && at + this.bytes.length <= end;
  }

  /** Forgets the buffer, after each chunk: so it is not kept alive, and a buffer pushed again is searched again. */
  reset(): void {
    this.buf = EMPTY;
    this.at = -1;
  }
}

/**
 * Whether the JSON text in `buf` nests arrays and objects deeper than `max`, read without decoding
 * (exact about strings and escapes). `JSON.parse` accepts any depth, but `JSON.stringify` and any
 * recursion over the result do not: a document from a peer is checked before it is parsed.
 */
export function nestsDeeperThan(buf: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return false;
}
