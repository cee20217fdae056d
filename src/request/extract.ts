/**
 * Pure extraction of what the gateway needs from an LLM request body: the model, whether the call
 * streams, whether an OpenAI stream already asks for usage, the generation parameters present,
 * whether the call only loads or unloads the model, and the context window it asks for.
 * Nothing here touches the network. Every field is read as Ollama's Go decoder reads it (`read.ts`);
 * a body Ollama would refuse yields no model and no stream.
 */
import type { ModelLifecycle, RequestParams } from '../../otel/call';
import type { LlmRoute } from '../routes';
import { goDurationIsZero, readRequest, type RequestReading } from './read';

export interface LlmRequestInfo {
  /** The `model` field as Ollama decodes it, or undefined when empty or the body is refused. */
  model: string | undefined;
  /** Whether the call streams, after applying the endpoint's default. */
  stream: boolean;
  /** OpenAI streams: whether `stream_options.include_usage` is true as Ollama decodes it. */
  includeUsage: boolean;
  params: RequestParams;
  /** Native API: the call only loads (`load`) or unloads (`unload`) the model; see `requestLifecycle`. */
  lifecycle: ModelLifecycle | undefined;
  /** Native API: `options.num_ctx`, the context window (tokens) the call asks Ollama for. */
  numCtx: number | undefined;
  /** Native API: `options.num_keep`, the prompt tokens Ollama keeps when it cuts a prompt. */
  numKeep: number | undefined;
  /**
   * False when Ollama's decoder refuses the body (empty, not JSON, a field of the wrong type):
   * Ollama answers 400 and runs nothing, so no model or stream flag is read from it.
   */
  readable: boolean;
  /** The body as Ollama reads it (the affinity key's inputs, where the first value ends). */
  reading: RequestReading;
  /** The parsed body, only when asked for (message capture). */
  body: Record<string, unknown> | undefined;
}

/**
 * Whether a `keep_alive` value means "unload now", exactly as Ollama decodes it
 * (`api/types.go` `Duration.UnmarshalJSON`): a number is seconds, truncated to whole nanoseconds
 * (negative means "forever"); a string is a Go duration (`time.ParseDuration`: `"0"`, or signed
 * number-and-unit parts such as `"0s"`, `"0m"`, `"0.0h"`, `"-0s"`). Zero is unload. A value Ollama
 * cannot decode (Ollama answers 400) is not zero.
 */
export function isZeroKeepAlive(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 && v * 1e9 < 1;
  return typeof v === 'string' && goDurationIsZero(v) === true;
}

/**
 * Whether a native call only loads or unloads the model, as Ollama decides before generating
 * anything (`server/routes.go`): `/api/generate` whose `prompt` is `""` (GenerateHandler:
 * `req.Prompt == ""`), `/api/chat` whose `messages` is empty (ChatHandler: `len(req.Messages) == 0`),
 * both as Go decoded them (so absent, null and `[]` alike). With a zero `keep_alive` the call unloads
 * the model (`done_reason` "unload", answered even when the model is not loaded), otherwise it loads
 * it (`done_reason` "load"). The compatibility endpoints have no such calls.
 */
export function requestLifecycle(route: LlmRoute, reading: RequestReading): ModelLifecycle | undefined {
  if (route.api !== 'ollama' || !reading.ok || reading.empty !== true) return undefined;
  return reading.keepAliveZero === true ? 'unload' : 'load';
}

/** A whole number of tokens ≥ `min` from `options`, or undefined. */
function tokenOption(options: RequestReading['options'], key: string, min: number): number | undefined {
  const v = options?.get(key);
  return typeof v === 'number' && Number.isInteger(v) && v >= min ? v : undefined;
}

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

/** The body as JSON.parse reads it, for message capture only (never for what is metered or routed). */
function parsedForCapture(raw: Buffer, end: number): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(raw.toString('utf8', 0, end));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads an LLM request body as Ollama reads it (`read.ts`, Go's decoding rules); with `capture`,
 * also parses it for message capture. Never throws.
 * Ollama decodes the body as JSON whatever its Content-Type (README §4.9).
 */
export function extractRequest(route: LlmRoute, raw: Buffer, capture = false): LlmRequestInfo {
  const r = readRequest(route, raw);
  if (!r.ok) {
    return {
      model: undefined,
      stream: false,
      includeUsage: false,
      params: {},
      lifecycle: undefined,
      numCtx: undefined,
      numKeep: undefined,
      readable: false,
      reading: r,
      body: undefined,
    };
  }
  // Native API: a nil `*bool` streams; OpenAI and Anthropic: a plain bool; Responses: nil is false.
  const stream = route.canStream && (r.stream ?? route.streamsByDefault);
  const o = r.options;
  return {
    model: r.model !== '' ? r.model : undefined,
    stream,
    includeUsage: r.includeUsage === true,
    params: {
      temperature: orUndefined(r.temperature),
      topP: orUndefined(r.topP),
      topK: orUndefined(r.topK),
      maxTokens: orUndefined(r.maxTokens),
      seed: orUndefined(r.seed),
      stopSequences: orUndefined(r.stop),
    },
    lifecycle: requestLifecycle(route, r),
    numCtx: route.api === 'ollama' ? tokenOption(o, 'num_ctx', 1) : undefined,
    numKeep: route.api === 'ollama' ? tokenOption(o, 'num_keep', Number.MIN_SAFE_INTEGER) : undefined,
    readable: true,
    reading: r,
    body: capture ? parsedForCapture(raw, r.end) : undefined,
  };
}
