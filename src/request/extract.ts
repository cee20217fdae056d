/**
 * Pure extraction of what the gateway needs from an LLM request body: the model, whether the call
 * streams, whether an OpenAI stream already asks for usage, and the generation parameters present.
 * Nothing here touches the network; a body that is not a JSON object yields no `body` and no model.
 */
import type { RequestParams } from '../../otel/call';
import type { LlmRoute } from '../routes';

export interface LlmRequestInfo {
  /** The `model` field as sent, or undefined. */
  model: string | undefined;
  /** Whether the call streams, after applying the endpoint's default. */
  stream: boolean;
  /** OpenAI streams: whether the client set `stream_options.include_usage: true`. */
  includeUsage: boolean;
  /** Whether the body has a top-level `stream_options` member at all. */
  hasStreamOptions: boolean;
  params: RequestParams;
  /** The parsed body, for callers that need more (message capture). */
  body: Record<string, unknown> | undefined;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function stops(v: unknown): string[] | undefined {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  return undefined;
}

function extractParams(route: LlmRoute, body: Record<string, unknown>): RequestParams {
  if (route.api === 'ollama') {
    const o = body.options;
    if (!o || typeof o !== 'object') return {};
    const opts = o as Record<string, unknown>;
    return {
      temperature: num(opts.temperature),
      topP: num(opts.top_p),
      topK: num(opts.top_k),
      maxTokens: num(opts.num_predict),
      seed: num(opts.seed),
      stopSequences: stops(opts.stop),
    };
  }
  if (route.api === 'anthropic') {
    return {
      temperature: num(body.temperature),
      topP: num(body.top_p),
      topK: num(body.top_k),
      maxTokens: num(body.max_tokens),
      stopSequences: stops(body.stop_sequences),
    };
  }
  return {
    temperature: num(body.temperature),
    topP: num(body.top_p),
    maxTokens: num(body.max_completion_tokens) ?? num(body.max_tokens) ?? num(body.max_output_tokens),
    seed: num(body.seed),
    stopSequences: stops(body.stop),
  };
}

/** Reads an LLM request body. Never throws. */
export function extractRequest(route: LlmRoute, raw: Buffer): LlmRequestInfo {
  let body: unknown;
  try {
    // Ollama decodes the body as JSON whatever its Content-Type (README §4.9).
    body = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
  } catch {
    body = undefined;
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    return {
      model: undefined,
      stream: route.canStream && route.streamsByDefault,
      includeUsage: false,
      hasStreamOptions: false,
      params: {},
      body: undefined,
    };
  }
  const obj = body as Record<string, unknown>;
  // Native API: omitted and null both mean "stream"; only an explicit false turns it off.
  // OpenAI API: only an explicit true streams.
  const stream = route.canStream && (route.streamsByDefault ? obj.stream !== false : obj.stream === true);
  const so = obj.stream_options;
  const includeUsage = !!so && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true;
  return {
    model: typeof obj.model === 'string' && obj.model !== '' ? obj.model : undefined,
    stream,
    includeUsage,
    hasStreamOptions: Object.prototype.hasOwnProperty.call(obj, 'stream_options'),
    params: extractParams(route, obj),
    body: obj,
  };
}

const INCLUDE_USAGE_MEMBER = Buffer.from('"stream_options":{"include_usage":true},');

/**
 * Returns the body of an OpenAI streaming request with `stream_options.include_usage` set, so
 * Ollama reports the stream's token counts. When the body has no `stream_options`, the member is
 * spliced in after the opening brace and every other byte stays as sent; otherwise the object is
 * re-serialised with `include_usage: true`.
 */
export function withIncludeUsage(raw: Buffer, info: LlmRequestInfo): Buffer {
  if (!info.hasStreamOptions) {
    // A streaming request has at least `"stream":true`, so the object is never empty and the
    // spliced member can always end with a comma.
    const open = raw.indexOf(0x7b); // '{', the first non-blank byte of an object body
    return Buffer.concat([raw.subarray(0, open + 1), INCLUDE_USAGE_MEMBER, raw.subarray(open + 1)]);
  }
  const body = { ...(info.body as Record<string, unknown>) };
  const so = body.stream_options;
  body.stream_options = { ...(so && typeof so === 'object' ? (so as object) : {}), include_usage: true };
  return Buffer.from(JSON.stringify(body));
}
