/**
 * Asks Ollama for an OpenAI stream's usage on the client's behalf by splicing
 * `"stream_options":{"include_usage":true}` into the request body as sent. The body is never
 * re-serialised: the member is inserted as the last member of the body's first JSON value, just
 * before its closing brace, and every other byte reaches Ollama as the client sent it (so
 * `"seed": 9007199254740993` stays that integer, `1.0` stays `1.0`, key order and spacing stay).
 *
 * Why last: Go's decoder applies members in document order and matches keys case-insensitively
 * (`STREAM_OPTIONS`, `ſtream_options`), merging a later `stream_options` object into the struct an
 * earlier one made. A last member with the exact name therefore sets `include_usage` to true
 * whatever spelling, nesting or duplicates came before it, and however the client wrote its own
 * (`"INCLUDE_USAGE":false`, `null`, an earlier twin). Bytes after the first value are never read by
 * Ollama, and stay as sent.
 */
import type { LlmRequestInfo } from './extract';

/** One change to the body: `raw[start, end)` is replaced by `text` (an insertion when start === end). */
export interface Splice {
  start: number;
  end: number;
  text: string;
}

const MEMBER = '"stream_options":{"include_usage":true}';

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * The insertion that makes a body Go reads as an object ask for usage, given where its first value
 * ends (`end`, just after the closing brace); undefined when the first value is not an object.
 */
export function includeUsageSplice(raw: Buffer, end: number): Splice | undefined {
  const close = end - 1;
  if (raw[close] !== 0x7d) return undefined;
  let before = close - 1;
  while (isSpace(raw[before])) before--;
  // The byte before the closing brace is `{` only in an empty object: no member to follow.
  const text = raw[before] === 0x7b ? MEMBER : ',' + MEMBER;
  return { start: close, end: close, text };
}

/**
 * The body of an OpenAI streaming request with `stream_options.include_usage` set, so Ollama
 * reports the stream's token counts: `raw` with one insertion (see `includeUsageSplice`). A body
 * that already asks for usage is returned as it is; undefined for a body Go does not read as an
 * object (not reached: such a body never streams).
 */
export function withIncludeUsage(raw: Buffer, info: LlmRequestInfo): Buffer | undefined {
  if (info.includeUsage) return raw;
  if (!info.readable) return undefined;
  const splice = includeUsageSplice(raw, info.reading.end);
  if (splice === undefined) return undefined;
  return Buffer.concat([raw.subarray(0, splice.start), Buffer.from(splice.text), raw.subarray(splice.end)]);
}
