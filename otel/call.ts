/**
 * What the telemetry side is told about one LLM call: the request once its body is read, and the
 * outcome once it is over. Structural types defined here, so `otel/` depends on nothing in `src/`;
 * the protocol parsers' summary satisfies `CallFacts` as it is.
 */
import type { ErrorReason } from './instruments';

/** Generation parameters the request set (span attributes). */
export interface RequestParams {
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTokens?: number;
  seed?: number;
  stopSequences?: string[];
}

/**
 * A native call that only loads or unloads the model (an empty prompt or no messages; with a zero
 * `keep_alive`, unload). Not a generation: it is counted in `ollama_model_loads_total` /
 * `ollama_model_unloads_total` instead of the request-level metrics.
 */
export type ModelLifecycle = 'load' | 'unload';

export interface CallRequest {
  /** The model as Ollama resolves it (the metric label source). */
  model: string;
  /** The model as the client sent it (for span names and `gen_ai.request.model`). */
  requestModel: string | undefined;
  stream: boolean;
  params: RequestParams;
  /** Set when the request only loads or unloads the model (the response's `done_reason` has the last word). */
  lifecycle?: ModelLifecycle;
  /** The context window the request asks for (`options.num_ctx`), in tokens. */
  numCtx?: number;
  /** `options.num_keep`: prompt tokens Ollama keeps at the start when it cuts a prompt. */
  numKeep?: number;
  /** The parsed request body, read only when capturing content. */
  body: Record<string, unknown> | undefined;
}

/**
 * What the response told about the call. Durations are Ollama's integer nanoseconds; times are the
 * gateway's clock (ms, `performance.now()`).
 */
export interface CallFacts {
  responseModel?: string;
  responseId?: string;
  finishReasons?: string[];
  /** The whole prompt. */
  inputTokens?: number;
  /** The part of the prompt served from the KV cache; undefined when the answer did not say. */
  cachedTokens?: number;
  outputTokens?: number;
  totalDurationNs?: number;
  loadDurationNs?: number;
  promptEvalDurationNs?: number;
  evalDurationNs?: number;
  /** When the first and the last content chunk passed the gateway. */
  firstContentAt?: number;
  lastContentAt?: number;
  /** When the first chunk of the answer (not of thinking) passed the gateway. */
  firstAnswerAt?: number;
  /** Content chunks that passed (thinking included). */
  contentEvents?: number;
  /** Content chunks that carried thinking (reasoning) rather than the answer. */
  thinkingEvents?: number;
  errorMessage?: string;
  /** The answer's text, when content capture is on. */
  outputText?: string;
  /** A remote (cloud) model's host and name, as the answer carried them. */
  remoteHost?: string;
  remoteModel?: string;
}

export interface CallOutcome {
  /** HTTP status sent to the client; 499 when the client left before a response started. */
  status: number;
  /** Set when the call failed. */
  reason?: ErrorReason;
  /** What the response told; absent when no response came from Ollama. */
  summary?: CallFacts;
  /** Whether the response was a stream (NDJSON or SSE). */
  streamed: boolean;
  /** A short description of the failure, for the span status. */
  detail?: string;
}

const NS_PER_S = 1e9;

/**
 * Ollama's own figure (`eval_count / eval_duration`) when it reports one; otherwise, for a stream,
 * output tokens over the time between the first and the last content chunk seen at the gateway.
 */
export function tokensPerSecond(s: CallFacts, streamed: boolean): number | undefined {
  if (s.outputTokens === undefined || s.outputTokens <= 0) return undefined;
  if (s.evalDurationNs !== undefined && s.evalDurationNs > 0) {
    return (s.outputTokens * NS_PER_S) / s.evalDurationNs;
  }
  if (streamed && s.firstContentAt !== undefined && s.lastContentAt !== undefined && s.lastContentAt > s.firstContentAt) {
    return s.outputTokens / ((s.lastContentAt - s.firstContentAt) / 1000);
  }
  return undefined;
}

/**
 * The cached prompt tokens of a call, never more than its prompt (a count past it says nothing
 * sound); undefined when the answer did not report them.
 */
export function cachedTokensOf(s: CallFacts): number | undefined {
  const c = s.cachedTokens;
  if (c === undefined) return undefined;
  return s.inputTokens === undefined ? c : Math.min(c, s.inputTokens);
}

/**
 * The prompt tokens Ollama actually evaluated: the whole prompt less the part the KV cache served.
 * `prompt_eval_duration` covers only these, so the prefill rate is this over that duration, as
 * Ollama's own CLI and benchmark compute it.
 */
export function evaluatedPromptTokens(s: CallFacts): number | undefined {
  if (s.inputTokens === undefined) return undefined;
  return s.inputTokens - (cachedTokensOf(s) ?? 0);
}

/** Prefill speed, tokens/s: evaluated prompt tokens over `prompt_eval_duration`; undefined without both. */
export function prefillTokensPerSecond(s: CallFacts): number | undefined {
  const n = evaluatedPromptTokens(s);
  if (n === undefined || s.promptEvalDurationNs === undefined || s.promptEvalDurationNs <= 0) return undefined;
  return (n * NS_PER_S) / s.promptEvalDurationNs;
}

/**
 * An HTTP status as a label value. Ollama's side can send any three digits; only the statuses HTTP
 * defines (100–599) are kept, so the label set stays bounded and meaningful.
 */
export function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'invalid';
}

/** `error.type`: the HTTP status for Ollama's own 4xx/5xx answers, else the gateway's reason. */
export function errorType(outcome: CallOutcome): string {
  return outcome.reason === 'upstream_4xx' || outcome.reason === 'upstream_5xx' ? statusLabel(outcome.status) : (outcome.reason ?? '');
}

/** `gen_ai.operation.name` (and span name) of a load or unload call. */
export const LIFECYCLE_OPERATION: Readonly<Record<ModelLifecycle, string>> = { load: 'load_model', unload: 'unload_model' };

/**
 * What a finished call was: a load, an unload, or (undefined) a generation. The request decides
 * (`CallRequest.lifecycle`), and the response's `done_reason` has the last word when there is one:
 * "load" / "unload" make it a lifecycle call, any other reason ("stop", "length") a generation.
 */
export function lifecycleOf(requested: ModelLifecycle | undefined, s: CallFacts | undefined): ModelLifecycle | undefined {
  const reason = s?.finishReasons?.[0];
  if (reason === 'load' || reason === 'unload') return reason;
  return reason === undefined ? requested : undefined;
}

/** Finish reasons of an answer cut by the token limit: native and OpenAI "length", Anthropic "max_tokens". */
const TOKEN_LIMIT_REASONS: ReadonlySet<string> = new Set(['length', 'max_tokens']);

/** Whether the answer stopped at the token limit (`num_predict`, `max_tokens`), or a full window without context shift. */
export function cutByTokenLimit(s: CallFacts): boolean {
  return s.finishReasons?.some((r) => TOKEN_LIMIT_REASONS.has(r)) ?? false;
}

/** Ollama's default `num_keep` (`api/types.go` DefaultOptions). */
export const DEFAULT_NUM_KEEP = 4;
/** A prompt within this share of the end of the window counts as truncated (see `contextUse`). */
export const FULL_PROMPT_MARGIN = 1 / 20;

/**
 * The length Ollama cuts a too-long prompt to (`llm/llama_server.go` contextShiftPromptLimit): it
 * keeps `numKeep` tokens at the start and frees about half of the rest of the window.
 */
export function shiftPromptLimit(numCtx: number, numKeep: number): number {
  if (numCtx <= 1) return 0;
  const keep = Math.max(0, Math.min(numKeep, numCtx - 1));
  return numCtx - Math.max(Math.floor((numCtx - keep) / 2), 1);
}

/** How much of its window a call used, and which limits it ran into. */
export interface ContextUse {
  /** (prompt + output) / window; above 1 when generation went on past a full window. */
  ratio: number;
  promptTruncated: boolean;
  outputTruncated: boolean;
}

/**
 * The context use of a generation with `prompt` and `output` tokens in a `window` of tokens, the
 * request's `num_keep` given. Undefined when it says nothing: no usable window, or a prompt longer
 * than the window (Ollama never runs one, so the window is not the one the call ran with: the
 * model was reloaded with another since the last poll).
 *
 * Ollama reports no truncation; these rules infer it from the counts (fixtures README §9.2, with C
 * the window, P the prompt tokens, O the output tokens, k = num_keep, default 4; a negative k
 * keeps the whole prompt, so the cut leaves C − 1):
 *
 * - `prompt_truncated` when P = C − max(⌊(C − k′)/2⌋, 1) for k′ = k or k + 1 (a tokenizer that adds
 *   BOS keeps one more): the exact length Ollama's token cut leaves when the last message alone is
 *   longer than C − 1 (`completionPromptForRequest`, context shift on; 2050 or 2051 for C = 4096,
 *   k = 4). Or when P ≥ C − ⌊C/20⌋: dropping the oldest messages (`chatPrompt`) leaves a prompt
 *   just under the window, short of it by less than the next message it dropped; a prompt in the
 *   last 5% of the window was cut that way, or left the answer less than 5% of the window.
 *   An uncut prompt of exactly the cut length is counted too (about 2 in C calls at most).
 * - `output_truncated` when P + O ≥ C − 1: the window was full during generation. llama-server
 *   treats a slot as full when n_past + 1 ≥ n_ctx; it then shifts the context, discarding half of
 *   what follows the kept tokens (the model forgets the start of the conversation), or, with
 *   context shift off, stops with done_reason "length".
 */
export function contextUse(window: number, prompt: number, output: number, numKeep = DEFAULT_NUM_KEEP): ContextUse | undefined {
  if (!Number.isFinite(window) || window <= 1 || prompt < 0 || prompt > window) return undefined;
  // A negative num_keep keeps the whole prompt (`nKeep = len(tokens)`, capped at C − 1).
  const keep = numKeep < 0 ? window - 1 : numKeep;
  const cut = shiftPromptLimit(window, keep);
  const cutWithBos = shiftPromptLimit(window, keep + 1);
  const full = window - Math.floor(window * FULL_PROMPT_MARGIN);
  return {
    ratio: (prompt + output) / window,
    promptTruncated: prompt === cut || prompt === cutWithBos || prompt >= full,
    outputTruncated: prompt + output >= window - 1,
  };
}
