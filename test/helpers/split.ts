/** Ways of cutting a body into chunks, for tests that must hold under any chunking. */
import type { CallSummary, ResponseParser } from '../../src/protocol/summary';

/**
 * Every single split point (two chunks, cut at each offset, so inside every multi-byte UTF-8
 * character too), plus one-byte chunks, plus the body whole.
 */
export function* everySplit(body: Buffer): Generator<Buffer[]> {
  yield [body];
  for (let i = 1; i < body.length; i++) yield [body.subarray(0, i), body.subarray(i)];
  const bytes: Buffer[] = [];
  for (let i = 0; i < body.length; i++) bytes.push(body.subarray(i, i + 1));
  yield bytes;
}

/** Cuts `body` into chunks of pseudo-random sizes from 1 to `max`, seeded. */
export function randomChunks(body: Buffer, seed: number, max = 64): Buffer[] {
  let x = seed >>> 0 || 1;
  const out: Buffer[] = [];
  for (let i = 0; i < body.length;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const n = 1 + ((x >>> 0) % max);
    out.push(body.subarray(i, i + n));
    i += n;
  }
  return out;
}

export function parseWhole(parser: ResponseParser, body: Buffer): CallSummary {
  parser.push(body, 0);
  return parser.end(0);
}

/** A summary without the fields that depend on when and how the chunks arrived. */
export function stable(s: CallSummary): Omit<CallSummary, 'firstContentAt' | 'lastContentAt' | 'firstAnswerAt'> {
  const { firstContentAt: _f, lastContentAt: _l, firstAnswerAt: _a, ...rest } = s;
  return rest;
}
