/**
 * One finished call as the usage ledger keeps it, built from the facts the instruments get (one
 * measurement, three views). Never any prompt or answer text.
 *
 * GPU time is defined here, once:
 * - a local call whose answer reports Ollama's durations: load + prompt evaluation + generation
 *   (`load_duration` + `prompt_eval_duration` + `eval_duration`), as Ollama measured them;
 * - a local call that got an answer without them (the `/v1/*` compatibility endpoints carry
 *   none; a load-only call), the gateway's own wall time of the call, counted apart as estimated
 *   (`gpuSecondsEstimated`), so `gpuSeconds` = reported + estimated;
 * - a remote (cloud) call, and a call that got no answer: none. Remote calls are counted in
 *   requests and tokens, never in local GPU time.
 */
import { cachedTokensOf, type CallOutcome } from './call';
import { loadSecondsOf, queueSecondsOf, type CallMeasures } from './call-metrics';
import { statusLabel } from './call';

const NS_PER_S = 1e9;

/** A load this long or longer (Ollama's `load_duration`, or a load call's wall time) loaded the model. */
export const LOADED_SECONDS = 0.5;

/** Who made a call: decided at admission by the gateway. */
export interface CallOwner {
  tenant: string;
  user?: string;
  keyFingerprint?: string;
}

export interface UsageRecord {
  /** When the call ended, epoch milliseconds. */
  time: number;
  tenant: string;
  /** '' when no end user was asserted. */
  user: string;
  keyFingerprint: string;
  model: string;
  location: 'local' | 'remote';
  backend: string;
  endpoint: string;
  operation: string;
  status: number;
  /** The error reason, '' for a success. */
  error: string;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  loadSeconds: number;
  promptSeconds: number;
  generationSeconds: number;
  queueSeconds: number;
  wallSeconds: number;
  gpuSeconds: number;
  gpuSecondsEstimated: number;
  /** 1 when the call made Ollama load (or reload) its model. */
  loads: number;
  /** 1 when that load was a reload for options differing from the loaded instance (`num_ctx`). */
  optionReloads: number;
  traceId: string;
}

/** Where finished calls go to be written down. Must not block: it is called on the call's path. */
export interface UsageSink {
  record(r: UsageRecord): void;
}

/** What the recorder knows besides the measures and the outcome. */
export interface UsageContext {
  owner: CallOwner;
  operation: string;
  backend: string | undefined;
  traceId: string | undefined;
  /** The request's `num_ctx`, and the window the model ran with before the call (last poll). */
  numCtx: number | undefined;
  loadedContext: number | undefined;
  now: number;
}

/** The ledger row of a finished call. */
export function usageRecordOf(outcome: CallOutcome, m: CallMeasures, c: UsageContext): UsageRecord {
  const s = outcome.summary;
  const remote = m.remote === true;
  const ns = (v: number | undefined) => (v === undefined || !Number.isFinite(v) || v < 0 ? 0 : v / NS_PER_S);
  const load = remote ? 0 : (loadSecondsOf(outcome, m) ?? 0);
  const prompt = remote ? 0 : ns(s?.promptEvalDurationNs);
  const generation = remote ? 0 : ns(s?.evalDurationNs);
  const reports = s !== undefined && (s.loadDurationNs !== undefined || s.promptEvalDurationNs !== undefined || s.evalDurationNs !== undefined);
  let gpu = 0;
  let estimated = 0;
  if (!remote && s !== undefined) {
    if (reports) gpu = load + prompt + generation;
    else if (m.lifecycle === 'load' || outcome.status < 400) gpu = estimated = m.wallSeconds;
  } else if (!remote && m.lifecycle === 'load' && outcome.reason === undefined) {
    gpu = estimated = m.wallSeconds;
  }
  const loads = load >= LOADED_SECONDS ? 1 : 0;
  const optionReloads = loads && c.numCtx !== undefined && c.loadedContext !== undefined && c.numCtx !== c.loadedContext ? 1 : 0;
  const count = (v: number | undefined) => (v === undefined || !Number.isFinite(v) || v < 0 ? 0 : Math.floor(v));
  return {
    time: c.now,
    tenant: c.owner.tenant,
    user: c.owner.user ?? '',
    keyFingerprint: c.owner.keyFingerprint ?? '',
    model: m.model,
    location: remote ? 'remote' : 'local',
    backend: c.backend ?? '',
    endpoint: m.endpoint,
    operation: c.operation,
    status: Number(statusLabel(outcome.status)) || 0,
    error: outcome.reason ?? '',
    inputTokens: count(s?.inputTokens),
    cachedTokens: count(s ? cachedTokensOf(s) : undefined),
    // A stream cut before its final event (the client left, Ollama broke off) has no counts; the
    // chunks it passed are a floor of what it generated, so leaving just before `done` is not free.
    outputTokens: count(s?.outputTokens ?? (outcome.reason !== undefined ? s?.contentEvents : undefined)),
    loadSeconds: load,
    promptSeconds: prompt,
    generationSeconds: generation,
    queueSeconds: queueSecondsOf(outcome, m) ?? 0,
    wallSeconds: m.wallSeconds,
    gpuSeconds: gpu,
    gpuSecondsEstimated: estimated,
    loads,
    optionReloads,
    traceId: c.traceId ?? '',
  };
}
