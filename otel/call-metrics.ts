/**
 * The metrics of one finished LLM call, in both families: the `ollama_*` names and the GenAI
 * convention metrics, from the same measurements.
 */
import type { CallAttributes } from './attributes';
import { errorType, tokensPerSecond, type CallOutcome } from './call';
import { ATTR_ENDPOINT, ATTR_MODEL, ATTR_REASON, ATTR_STATUS, type GenAiInstruments, type OllamaInstruments } from './instruments';
import * as sc from './semconv';

const NS_PER_S = 1e9;

/** What one call measured, besides its outcome. */
export interface CallMeasures {
  /** The bounded model label. */
  model: string;
  endpoint: string;
  wallSeconds: number;
  /** Streams only: request received → first content chunk forwarded. */
  ttftSeconds: number | undefined;
  /** Gaps between content chunks longer than STREAM_STALL_SECONDS. */
  stalls: number;
  /** Whether the call was counted in flight (the model became known). */
  wasInFlight: boolean;
}

export function recordOllamaCall(ins: OllamaInstruments, attrs: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  if (m.wasInFlight) ins.inFlight.add(-1, attrs.modelEndpoint);
  ins.requests.add(1, { [ATTR_MODEL]: m.model, [ATTR_ENDPOINT]: m.endpoint, [ATTR_STATUS]: String(outcome.status) });
  ins.responseSeconds.record(m.wallSeconds, attrs.modelEndpoint);
  if (outcome.reason) {
    ins.requestErrors.add(1, { [ATTR_MODEL]: m.model, [ATTR_ENDPOINT]: m.endpoint, [ATTR_REASON]: outcome.reason });
  }

  const s = outcome.summary;
  if (!s) return;
  const modelOnly = attrs.model;
  if (s.loadDurationNs !== undefined) ins.loadSeconds.record(s.loadDurationNs / NS_PER_S, modelOnly);
  if (s.promptEvalDurationNs !== undefined) ins.promptEvalSeconds.record(s.promptEvalDurationNs / NS_PER_S, modelOnly);
  if (s.evalDurationNs !== undefined) ins.evalSeconds.record(s.evalDurationNs / NS_PER_S, modelOnly);
  if (s.inputTokens !== undefined && s.inputTokens > 0) ins.tokensProcessed.add(s.inputTokens, modelOnly);
  if (s.outputTokens !== undefined && s.outputTokens > 0) ins.tokensGenerated.add(s.outputTokens, modelOnly);
  const tps = tokensPerSecond(s, outcome.streamed);
  if (tps !== undefined) ins.tokensPerSecond.record(tps, modelOnly);
  if (s.totalDurationNs !== undefined) ins.queueSeconds.record(Math.max(0, m.wallSeconds - s.totalDurationNs / NS_PER_S), modelOnly);

  if (m.ttftSeconds !== undefined) ins.timeToFirstToken.record(m.ttftSeconds, modelOnly);
  if (m.stalls > 0) ins.streamStalls.add(m.stalls, modelOnly);
}

export function recordGenAiCall(ins: GenAiInstruments, a: CallAttributes, outcome: CallOutcome, m: CallMeasures): void {
  const attrs = a.genAi;
  const failed = outcome.reason !== undefined && outcome.reason !== 'client_cancelled';
  ins.operationDuration.record(m.wallSeconds, failed ? { ...attrs, [sc.ERROR_TYPE]: errorType(outcome) } : attrs);
  const s = outcome.summary;
  if (!s) return;
  if (s.inputTokens !== undefined) ins.tokenUsage.record(s.inputTokens, a.genAiInput);
  if (s.outputTokens !== undefined) ins.tokenUsage.record(s.outputTokens, a.genAiOutput);
  if (outcome.reason) return; // the server-side latency metrics are for successful responses
  if (m.ttftSeconds !== undefined) ins.timeToFirstToken.record(m.ttftSeconds, attrs);
  const tps = tokensPerSecond(s, outcome.streamed);
  if (tps !== undefined) ins.timePerOutputToken.record(1 / tps, attrs);
}
