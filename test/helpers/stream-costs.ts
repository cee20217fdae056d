/**
 * Shared by the parser tests and the large-event benchmark: big bodies cut as a socket delivers
 * them, and counters of the work a parser does (bytes copied by `Buffer.concat`, bytes covered by
 * `indexOf`), so "linear" is checked without timing anything.
 */

/** Socket-sized chunks. */
export const CHUNK = 64 * 1024;

/** `body` cut into `size`-byte chunks, as a socket delivers it. */
export function chunksOf(body: Buffer, size = CHUNK): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out;
}

/** One content event (or NDJSON line body) whose JSON text is `bytes` long. */
export function bigJson(bytes: number): string {
  const prefix = '{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"';
  const suffix = '"},"finish_reason":null}]}';
  return prefix + 'a'.repeat(bytes - prefix.length - suffix.length) + suffix;
}

/** Runs `fn` with `Buffer.concat` wrapped; returns how many bytes it copied. */
export function bytesConcatenated(fn: () => void): number {
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = ((list: readonly Uint8Array[], totalLength?: number) => {
    const out = concat(list, totalLength);
    copied += out.length;
    return out;
  }) as typeof Buffer.concat;
  try {
    fn();
  } finally {
    Buffer.concat = concat;
  }
  return copied;
}

/** Runs `fn` with `Buffer.prototype.indexOf` wrapped; returns how many bytes its searches covered. */
export function bytesSearched(fn: () => void): number {
  const proto = Buffer.prototype as unknown as { indexOf: (this: Buffer, value: unknown, byteOffset?: number, encoding?: BufferEncoding) => number };
  const indexOf = proto.indexOf;
  let searched = 0;
  proto.indexOf = function (value, byteOffset = 0, encoding) {
    const at = indexOf.call(this, value, byteOffset, encoding);
    const needle = typeof value === 'number' ? 1 : Buffer.byteLength(value as Buffer);
    searched += (at === -1 ? this.length : at + needle) - byteOffset;
    return at;
  };
  try {
    fn();
  } finally {
    proto.indexOf = indexOf;
  }
  return searched;
}
