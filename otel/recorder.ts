/**
 * One recorder per instrumented request: created when the request arrives, told the model once the
 * body is read, and finished exactly once — on completion, failure or client abort — with what the
 * response parser learnt. All metric recording for an LLM call happens in `finish`.
 */
import type { Attributes } from '@opentelemetry/api';
import type { CallSummary } from '../src/protocol/summary';
import { ATTR_ENDPOINT, ATTR_MODEL, ATTR_REASON, ATTR_STATUS, type ErrorReason, type Instruments } from './instruments';
import type { ModelLabels } from './labels';

const NS_PER_S = 1e9;

export interface CallOutcome {
  /** HTTP status sent to the client; 499 when the client left before a response started. */
  status: number;
  /** Set when the call failed. */
  reason?: ErrorReason;
  /** What the response parser learnt; absent when no response came from Ollama. */
  summary?: CallSummary;
  /** Whether the response was a stream (NDJSON or SSE). */
  streamed: boolean;
}

export class Telemetry {
  constructor(
    readonly instruments: Instruments,
    readonly modelLabels: ModelLabels,
  ) {}

  /** Starts recording a request to `endpoint` (a route template) received at `startedAt` (ms). */
  begin(endpoint: string, startedAt: number): CallRecorder {
    return new CallRecorder(this, endpoint, startedAt);
  }
}

export class CallRecorder {
  private model = 'unknown';
  private inFlightAttrs: Attributes | undefined;
  private finished = false;

  constructor(
    private readonly telemetry: Telemetry,
    readonly endpoint: string,
    readonly startedAt: number,
  ) {}

  /** The request's model, already normalised; called once the body has been read. */
  setModel(model: string): void {
    this.model = this.telemetry.modelLabels.label(model);
    this.inFlightAttrs = { [ATTR_MODEL]: this.model, [ATTR_ENDPOINT]: this.endpoint };
    this.telemetry.instruments.inFlight.add(1, this.inFlightAttrs);
  }

  get modelLabel(): string {
    return this.model;
  }

  /** Records the request. Only the first call counts. */
  finish(outcome: CallOutcome, endedAt: number): void {
    if (this.finished) return;
    this.finished = true;
    const ins = this.telemetry.instruments;
    const model = this.model;
    const endpoint = this.endpoint;
    if (this.inFlightAttrs) ins.inFlight.add(-1, this.inFlightAttrs);

    ins.requests.add(1, { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint, [ATTR_STATUS]: String(outcome.status) });
    const byModel: Attributes = { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint };
    ins.responseSeconds.record(Math.max(0, endedAt - this.startedAt) / 1000, byModel);
    if (outcome.reason) {
      ins.requestErrors.add(1, { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint, [ATTR_REASON]: outcome.reason });
    }

    const s = outcome.summary;
    if (!s) return;
    const modelOnly: Attributes = { [ATTR_MODEL]: model };
    if (s.loadDurationNs !== undefined) ins.loadSeconds.record(s.loadDurationNs / NS_PER_S, modelOnly);
    if (s.promptEvalDurationNs !== undefined) ins.promptEvalSeconds.record(s.promptEvalDurationNs / NS_PER_S, modelOnly);
    if (s.evalDurationNs !== undefined) ins.evalSeconds.record(s.evalDurationNs / NS_PER_S, modelOnly);
    if (s.inputTokens !== undefined && s.inputTokens > 0) ins.tokensProcessed.add(s.inputTokens, modelOnly);
    if (s.outputTokens !== undefined && s.outputTokens > 0) ins.tokensGenerated.add(s.outputTokens, modelOnly);

    const tps = tokensPerSecond(s, outcome.streamed);
    if (tps !== undefined) ins.tokensPerSecond.record(tps, modelOnly);
  }
}

/**
 * Ollama's own figure (`eval_count / eval_duration`) when it reports one; otherwise, for a stream,
 * output tokens over the time between the first and the last content chunk seen at the gateway.
 */
export function tokensPerSecond(s: CallSummary, streamed: boolean): number | undefined {
  if (s.outputTokens === undefined || s.outputTokens <= 0) return undefined;
  if (s.evalDurationNs !== undefined && s.evalDurationNs > 0) {
    return (s.outputTokens * NS_PER_S) / s.evalDurationNs;
  }
  if (streamed && s.firstContentAt !== undefined && s.lastContentAt !== undefined && s.lastContentAt > s.firstContentAt) {
    return s.outputTokens / ((s.lastContentAt - s.firstContentAt) / 1000);
  }
  return undefined;
}
