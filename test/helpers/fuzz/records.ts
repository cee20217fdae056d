/**
 * What a plan is (the writes, waits and resets one socket makes) and what was sent, by id: an
 * `x-fuzz-id` header on every generated request lets the upstream books find what its client sent.
 */
import { createHash } from 'node:crypto';

export type Auth = 'valid' | 'invalid' | 'ambiguous';

export interface SentRecord {
  /** What the gateway must forward: a path+query; null: must not be forwarded; undefined: unspecified. */
  expect: string | null | undefined;
  /** To one of the gateway's own paths: must never reach Ollama. */
  own: boolean;
  auth: Auth;
  target: string;
  method: string;
}

export const ID_HEADER = 'x-fuzz-id';

export function makeId(i: number, k: number): string {
  const base = `${i}.${k}`;
  return `${base}-${createHash('sha1').update(base).digest('hex').slice(0, 6)}`;
}

export function checkedId(raw: string | string[] | undefined): string | undefined {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return undefined;
  const m = /^(\d+\.\d+)-([0-9a-f]{6})$/.exec(v);
  if (!m) return undefined;
  return createHash('sha1').update(m[1]).digest('hex').slice(0, 6) === m[2] ? v : undefined;
}

export interface Ctx {
  seed: number;
  port: number;
  /** Every n-th request carries a model name of 1–5.5 MB (0: never). */
  hugeEvery: number;
  /** Every n-th request carries a 1–7 MB prompt (0: never). */
  bigBodyEvery: number;
}

export interface Req {
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
  body: Buffer;
  framing: 'length' | 'chunked' | 'none';
  /** Replaces the chunked encoding of the body. */
  rawChunked?: Buffer;
  /** Line ending of the head (`\r\n`, or bare `\n` sometimes). */
  eol: string;
  rec: SentRecord;
  id: string;
  /** No mutation that makes the spec's answer unclear (framing, version, method, odd headers). */
  clean: boolean;
}

export type Part =
  | { t: 'write'; data: Buffer }
  | { t: 'wait'; ms: number }
  | { t: 'end' }
  | { t: 'reset' }
  | { t: 'await-response'; n: number }
  | { t: 'await-bytes' }
  | { t: 'pause-read'; ms: number };

export interface Plan {
  index: number;
  kind: string;
  parts: Part[];
  /** Responses after which the client may hang up. */
  expect: number;
  /** Methods of the requests in order (HEAD responses have no body). */
  methods: string[];
  records: Map<string, SentRecord>;
  notes: string[];
  /** The spec's exact answer to the first request, where the request leaves no doubt. */
  oracle?: Oracle;
  /** Keep the (de-chunked) response bodies in the result. */
  keepBodies?: boolean;
}

export interface Oracle {
  status: number;
  /** Response headers (lower-case names) that must match. */
  headers?: Record<string, RegExp>;
  what: string;
}

export const enc = (s: string) => Buffer.from(s, 'utf8');
export const latin1 = (s: string) => Buffer.from(s, 'latin1');
