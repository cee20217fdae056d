/**
 * Picks the parser for a response from its Content-Type, never from the request: a streaming
 * request that fails before generation gets a single JSON object (README of the fixtures, §4.2).
 */
import { JsonBodyParser, OpaqueParser } from './json';
import { NdjsonParser } from './ndjson';
import { SseParser } from './sse';
import type { ParserOptions, ResponseParser } from './summary';

export type Framing = 'ndjson' | 'sse' | 'json' | 'opaque';

export function framingOf(contentType: string | undefined): Framing {
  if (!contentType) return 'opaque';
  const ct = contentType.toLowerCase();
  if (ct.startsWith('application/x-ndjson')) return 'ndjson';
  if (ct.startsWith('text/event-stream')) return 'sse';
  if (ct.startsWith('application/json') || /^[a-z]+\/[^;]*\+json/.test(ct)) return 'json';
  return 'opaque';
}

export function parserFor(framing: Framing, options?: ParserOptions): ResponseParser {
  switch (framing) {
    case 'ndjson':
      return new NdjsonParser(options);
    case 'sse':
      return new SseParser(options);
    case 'json':
      return new JsonBodyParser(options);
    default:
      return new OpaqueParser();
  }
}

export { emptySummary, MAX_INSPECT_BYTES } from './summary';
export type { CallSummary, ParserOptions, ResponseParser } from './summary';
