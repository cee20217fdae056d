/**
 * The metrics of one finished LLM call, in both families: the `ollama_*` names and the GenAI
 * convention metrics, from the same measurements.
 */
import type { Attributes } from '@opentelemetry/api';
import type { CallAttributes } from './attributes';
import { GEN_AI_OPERATION_NAME } from './semconv';
import { cachedTokensOf, cutByTokenLimit, errorType, statusLabel, tokensPerSecond, type CallOutcome, type ContextUse, type ModelLifecycle } from './call';
import {
  ATTR_KIND,
  ATTR_REASON,
  CONTEXT_LIMIT_KINDS,
  ERROR_REASONS,
  type ContextLimitKind,
  type GenAiInstruments,
  type GenAiLatestInstruments,
  type OllamaInstruments,
} from './instruments';

const NS_PER_S = 1e9;

/** What one call measured, besides its outcome. */
export interface CallMeasures {
  /** The bounded model label. */
  model: string;
  endpoint: string;
  wallSeconds: number;
  /** Streams only: request received → first content chunk forwarded. */
  ttftSeconds: number | undefined;
  /** Streams that thought: request received → first answer (not thinking) chunk forwarded. */
  ttfaSeconds?: number;
  /** Gaps between content chunks longer than STREAM_STALL_SECONDS. */
  stalls: number;
  /** Whether the call was counted in flight (the model became known). */
  wasInFlight: boolean;
  /** Set when the call only loaded or unloaded the model (`lifecycleOf`). */
  lifecycle?: ModelLifecycle;
  /** How much of its context window a generation used, when the window is known. */
  context?: ContextUse;
  /**
   * The model runs on another host (a cloud or remote model): its durations are that host's, so
   * the call is left out of every figure of the local GPU (load, prompt evaluation, generation,
   * tokens per second, cold loads).
   */
  remote?: boolean;
}

/** `{model, kind}` of `ollama_context_limit_hits_total` (and `backend`, with several). */
function kindAttrs(attrs: CallAttributes, kind: ContextLimitKind): Attributes {
  return { ...attrs.model, [ATTR_KIND]: kind };
}

/**
 * Creates a model's lifecycle and context-limit series at 0 when the model is first seen, so that
 * `rate()` and `increase()` see their first increment (a counter that appears at 1 shows no rate).
 */
export function initModelSeries(ins: OllamaInstruments, attrs: CallAttributes): void {
  ins.streamStalls.add(0, attrs.model);
  ins.modelLoads.add(0, attrs.model);
  ins.modelUnloads.add(0, attrs.model);
  ins.generationTruncated.add(0, attrs.model);
  for (const kind of CONTEXT_LIMIT_KINDS) ins.contextLimitHits.add(0, kindAttrs(attrs, kind));
}

/**
 * Creates the error series of a (model, endpoint) at 0, the first time it is seen, so a dashboard's
 * error rate reads 0 on a healthy system rather than "No data".
 */
export function initEndpointSeries(ins: OllamaInstruments, attrs: CallAttributes): void {
  for (const reason of ERROR_REASONS) ins.requestErrors.add(0, { ...attrs.modelEndpoint, [ATTR_REASON]: reason });
}

/** Whether a finished call counts as a request: every call but a load or unload that succeeded. */
export function isRequest(outcome: CallOutcome, m: CallMeasures): boolean {
  return m.lifecycle === undefined || outcome.reason !== undefined;
}

/**
 * The load time a call records in `ollama_load_duration_seconds`: a successful load call's wall
 * time (Ollama reports no durations on these answers), else a generation's `load_duration`.
 */
export function loadSecondsOf(outcome: CallOutcome, m: CallMeasures): number | undefined {
  if (m.remote) return undefined;
  if (m.lifecycle !== undefined) return m.lifecycle === 'load' && outcome.reason === undefined ? m.wallSeconds : undefined;
  const ns = outcome.summary?.loadDurationNs;
  return ns === undefined ? undefined : ns / NS_PER_S;
}

/** Gateway wall time minus Ollama's `total_duration` (never below 0), when Ollama reported it. */
export function queueSecondsOf(outcome: CallOutcome, m: CallMeasures): number | undefined {
  const ns = outcome.summary?.totalDurationNs;
  return ns === undefined ? undefined : Math.max(0, m.wallSeconds - ns / NS_PER_S);
}

export function recordOllamaCall(ins: OllamaInstruments, attrs: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  if (m.wasInFlight) ins.inFlight.add(-1, attrs.inFlight);
  const modelOnly = attrs.model;
  if (!isRequest(outcome, m)) {
    // A load or unload, not a generation: counted on its own, in no request-level metric.
    if (m.lifecycle === 'load') {
      ins.modelLoads.add(1, modelOnly);
      ins.loadSeconds.record(loadSecondsOf(outcome, m) ?? m.wallSeconds, modelOnly);
    } else {
      ins.modelUnloads.add(1, modelOnly);
    }
    return;
  }
  // Every other call, failed loads and unloads included (a 404 for a missing model is a failed
  // request like any other), is a request.
  ins.requests.add(1, attrs.byStatus.with(statusLabel(outcome.status)));
  ins.responseSeconds.record(m.wallSeconds, attrs.modelEndpoint);
  if (outcome.reason) ins.requestErrors.add(1, attrs.byReason.with(outcome.reason));
  if (m.lifecycle !== undefined) return;

  if (m.remote) ins.remoteRequests.add(1, modelOnly);
  const s = outcome.summary;
  if (!s) return;
  if (!m.remote) {
    const load = loadSecondsOf(outcome, m);
    if (load !== undefined) ins.loadSeconds.record(load, modelOnly);
    if (s.promptEvalDurationNs !== undefined) ins.promptEvalSeconds.record(s.promptEvalDurationNs / NS_PER_S, modelOnly);
    if (s.evalDurationNs !== undefined) ins.evalSeconds.record(s.evalDurationNs / NS_PER_S, modelOnly);
    const tps = tokensPerSecond(s, outcome.streamed);
    if (tps !== undefined) ins.tokensPerSecond.record(tps, modelOnly);
  }
  if (s.inputTokens !== undefined && s.inputTokens > 0) ins.tokensProcessed.add(s.inputTokens, modelOnly);
  // Added at 0 too: an Ollama that reports the field has the series, so a hit ratio reads 0, not
  // "no data"; an older one, which never sends it, gets none.
  const cached = cachedTokensOf(s);
  if (cached !== undefined) ins.tokensCached.add(cached, modelOnly);
  if (s.outputTokens !== undefined && s.outputTokens > 0) ins.tokensGenerated.add(s.outputTokens, modelOnly);
  const queue = queueSecondsOf(outcome, m);
  if (queue !== undefined) ins.queueSeconds.record(queue, modelOnly);

  if (m.ttftSeconds !== undefined) ins.timeToFirstToken.record(m.ttftSeconds, modelOnly);
  if (m.ttfaSeconds !== undefined) ins.timeToFirstAnswer.record(m.ttfaSeconds, modelOnly);
  if (m.stalls > 0) ins.streamStalls.add(m.stalls, modelOnly);

  if (cutByTokenLimit(s)) ins.generationTruncated.add(1, modelOnly);
  const c = m.context;
  if (c) {
    ins.contextUsedRatio.record(c.ratio, modelOnly);
    if (c.promptTruncated) ins.contextLimitHits.add(1, kindAttrs(attrs, 'prompt_truncated'));
    if (c.outputTruncated) ins.contextLimitHits.add(1, kindAttrs(attrs, 'output_truncated'));
  }
}

/**
 * A call to a model name that is not detailed (labels.ts): its request and error counts (under
 * `counted`: its own label, or `other` past the label's bound), and the end of its time in flight;
 * no histogram, no per-model counter, no GenAI metric.
 */
export function recordUnservedCall(ins: OllamaInstruments, attrs: CallAttributes, counted: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  if (m.wasInFlight) ins.inFlight.add(-1, attrs.inFlight);
  if (!isRequest(outcome, m)) return;
  ins.requests.add(1, counted.byStatus.with(statusLabel(outcome.status)));
  if (outcome.reason) ins.requestErrors.add(1, counted.byReason.with(outcome.reason));
}

/** The GenAI convention metrics of a generation or embedding call (loads and unloads have none). */
export function recordGenAiCall(ins: GenAiInstruments, a: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  if (m.lifecycle !== undefined) return;
  const attrs = a.genAi;
  const failed = outcome.reason !== undefined && outcome.reason !== 'client_cancelled';
  ins.operationDuration.record(m.wallSeconds, failed ? a.byErrorType.with(errorType(outcome)) : attrs);
  const s = outcome.summary;
  if (!s) return;
  if (s.inputTokens !== undefined) ins.tokenUsage.record(s.inputTokens, a.genAiInput);
  const cached = cachedTokensOf(s);
  if (cached !== undefined) ins.cacheReadTokens.add(cached, attrs);
  if (s.outputTokens !== undefined) ins.tokenUsage.record(s.outputTokens, a.genAiOutput);
  if (outcome.reason) return; // the server-side latency metrics are for successful responses
  if (m.ttftSeconds !== undefined) ins.timeToFirstToken.record(m.ttftSeconds, attrs);
  const tps = tokensPerSecond(s, outcome.streamed);
  if (tps !== undefined) ins.timePerOutputToken.record(1 / tps, attrs);
}

/** `gen_ai.token.modality`: Ollama does not break usage down by modality, which the conventions call `unknown`. */
const MODALITY_UNKNOWN = { 'gen_ai.token.modality': 'unknown' } as const;
/** The usage counters' attributes, per attribute set of the call (the sets are cached and bounded). */
const withModality = new WeakMap<Attributes, Attributes>();

function modalityAttrs(attrs: Attributes): Attributes {
  let m = withModality.get(attrs);
  if (m === undefined) {
    m = { ...attrs, ...MODALITY_UNKNOWN };
    withModality.set(attrs, m);
  }
  return m;
}

/** The GenAI metrics under the newest conventions' names (see `GenAiLatestInstruments`). */
export function recordGenAiLatestCall(ins: GenAiLatestInstruments, a: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  if (m.lifecycle !== undefined) return;
  const attrs = a.genAi;
  const failed = outcome.reason !== undefined && outcome.reason !== 'client_cancelled';
  const duration = attrs[GEN_AI_OPERATION_NAME] === 'embeddings' ? ins.operationDuration : ins.inferenceDuration;
  duration.record(m.wallSeconds, failed ? a.byErrorType.with(errorType(outcome)) : attrs);
  const s = outcome.summary;
  if (!s) return;
  const usage = modalityAttrs(attrs);
  if (s.inputTokens !== undefined) {
    ins.inputTokens.record(s.inputTokens, attrs);
    ins.usageInputTokens.add(s.inputTokens, usage);
  }
  const cached = cachedTokensOf(s);
  if (cached !== undefined) ins.usageCacheReadTokens.add(cached, usage);
  if (s.outputTokens !== undefined) {
    ins.outputTokens.record(s.outputTokens, attrs);
    ins.usageOutputTokens.add(s.outputTokens, usage);
  }
  if (outcome.reason) return;
  if (m.ttftSeconds !== undefined) ins.timeToFirstChunk.record(m.ttftSeconds, attrs);
}
