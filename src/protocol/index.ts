/**
 * Picks the parser for a response from its Content-Type, never from the request: a streaming
 * request that fails before generation gets a single JSON object (README of the fixtures, §4.2).
 * An SSE stream is read in the endpoint's event format.
 */
import { AnthropicSseParser } from './anthropic';
import { JsonBodyParser, OpaqueParser } from './json';
import { NdjsonParser } from './ndjson';
import { ResponsesSseParser } from './responses';
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

/** The SSE event formats (see `EventFormat` in routes.ts); `ollama` streams are NDJSON. */
export type SseEvents = 'ollama' | 'openai' | 'anthropic' | 'responses';

export function parserFor(framing: Framing, events: SseEvents, options?: ParserOptions): ResponseParser {
  switch (framing) {
    case 'ndjson':
      return new NdjsonParser(options);
    case 'sse':
      if (events === 'anthropic') return new AnthropicSseParser(options);
      if (events === 'responses') return new ResponsesSseParser(options);
      return new SseParser(options);
    case 'json':
      return new JsonBodyParser(options);
    default:
      return new OpaqueParser();
  }
}

export { emptySummary, MAX_INSPECT_BYTES } from './summary';
export type { CallSummary, ParserOptions, ResponseParser } from './summary';
