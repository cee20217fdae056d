/**
 * Pure extraction of what the gateway needs from an LLM request body: the model, whether the call
 * streams, whether an OpenAI stream already asks for usage, the generation parameters present,
 * whether the call only loads or unloads the model, and the context window it asks for.
 * Nothing here touches the network; a body that is not a JSON object yields no `body` and no model.
 */
import type { ModelLifecycle, RequestParams } from '../../otel/call';
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
  /** Native API: the call only loads (`load`) or unloads (`unload`) the model; see `requestLifecycle`. */
  lifecycle: ModelLifecycle | undefined;
  /** Native API: `options.num_ctx`, the context window (tokens) the call asks Ollama for. */
  numCtx: number | undefined;
  /** Native API: `options.num_keep`, the prompt tokens Ollama keeps when it cuts a prompt. */
  numKeep: number | undefined;
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

/** Go's `time.ParseDuration` units, in nanoseconds (`µ` as U+00B5 and U+03BC). */
const DURATION_UNITS_NS: Readonly<Record<string, number>> = { ns: 1, us: 1e3, '\u00b5s': 1e3, '\u03bcs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION_PART = /^(\d*)(?:\.(\d*))?([^\d.]+)/;

/**
 * Whether a `keep_alive` value means "unload now", exactly as Ollama decodes it
 * (`api/types.go` `Duration.UnmarshalJSON`): a number is seconds, truncated to whole nanoseconds
 * (negative means "forever"); a string is a Go duration (`time.ParseDuration`: `"0"`, or signed
 * number-and-unit parts such as `"0s"`, `"0m"`, `"0.0h"`, `"-0s"`). Zero is unload. A value Ollama
 * cannot decode (Ollama answers 400) is not zero.
 */
export function isZeroKeepAlive(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 && v * 1e9 < 1;
  if (typeof v !== 'string') return false;
  let s = v;
  if (s.startsWith('-') || s.startsWith('+')) s = s.slice(1);
  if (s === '0') return true;
  if (s === '') return false;
  let zero = true;
  while (s !== '') {
    const m = DURATION_PART.exec(s);
    if (!m) return false;
    const [whole, int = '', frac, unit = ''] = m;
    // The unit runs to the next digit or dot; Ollama refuses an unknown one.
    const ns = DURATION_UNITS_NS[unit];
    if (ns === undefined || (int === '' && (frac === undefined || frac === ''))) return false;
    // Go adds `int * unit + trunc(float64(f) * (float64(unit) / scale))` nanoseconds for each
    // part, where the fraction's digits are the integer f and 10^digits is scale.
    if (/[1-9]/.test(int) || (frac !== undefined && frac !== '' && Number(frac) * (ns / 10 ** frac.length) >= 1)) zero = false;
    s = s.slice(whole.length);
  }
  return zero;
}

/**
 * Whether a native call only loads or unloads the model, as Ollama decides before generating
 * anything (`server/routes.go`): `/api/generate` whose `prompt` is absent, null or `""`
 * (GenerateHandler: `req.Prompt == ""`), `/api/chat` whose `messages` is absent, null or `[]`
 * (ChatHandler: `len(req.Messages) == 0`). With a zero `keep_alive` the call unloads the model
 * (`done_reason` "unload", answered even when the model is not loaded), otherwise it loads it
 * (`done_reason` "load"). A `prompt` or `messages` of another type is a 400 from Ollama, and so an
 * ordinary (failed) call. The compatibility endpoints have no such calls.
 */
export function requestLifecycle(route: LlmRoute, body: Record<string, unknown>): ModelLifecycle | undefined {
  if (route.api !== 'ollama') return undefined;
  let empty: boolean;
  if (route.path === '/api/generate') empty = body.prompt === undefined || body.prompt === null || body.prompt === '';
  else if (route.path === '/api/chat')
    empty = body.messages === undefined || body.messages === null || (Array.isArray(body.messages) && body.messages.length === 0);
  else return undefined;
  if (!empty) return undefined;
  return isZeroKeepAlive(body.keep_alive) ? 'unload' : 'load';
}

/** A whole number of tokens ≥ `min` from `options`, or undefined. */
function tokenOption(body: Record<string, unknown>, key: string, min: number): number | undefined {
  const o = body.options;
  if (!o || typeof o !== 'object') return undefined;
  const v = num((o as Record<string, unknown>)[key]);
  return v !== undefined && Number.isInteger(v) && v >= min ? v : undefined;
}

/**
 * Go's encoding/json matches an object's keys to a struct's fields case-insensitively, and a later
 * key overwrites an earlier one: `{"model":"small","Model":"large"}` runs `large`. The top-level
 * members as Ollama reads them, by lower-case name (every field the gateway reads is lower case).
 */
function asGoReadsIt(body: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(body);
  if (keys.every((k) => k === k.toLowerCase())) return body;
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k.toLowerCase()] = body[k];
  return out;
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
      lifecycle: undefined,
      numCtx: undefined,
      numKeep: undefined,
      body: undefined,
    };
  }
  // The fields as Ollama's Go decoder reads them, so the gateway measures the model Ollama runs.
  const obj = asGoReadsIt(body as Record<string, unknown>);
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
    lifecycle: requestLifecycle(route, obj),
    numCtx: route.api === 'ollama' ? tokenOption(obj, 'num_ctx', 1) : undefined,
    numKeep: route.api === 'ollama' ? tokenOption(obj, 'num_keep', Number.MIN_SAFE_INTEGER) : undefined,
    body: body as Record<string, unknown>,
  };
}
