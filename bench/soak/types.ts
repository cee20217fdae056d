/** What the soak is made of: kinds of traffic, what each adds to the gateway's counts, and what a client saw. */
import type http from 'node:http';

export type Outcome = 'full' | 'status' | 'broken' | 'cancelled';

/** One request a kind makes that the gateway counts in ollama_requests_total. */
export interface Count {
  model: string;
  endpoint: string;
  /** The status it is counted with, where known. */
  status?: number;
  /** The error reason it is counted with, where known (checked for the reasons in REASON_BOOKS). */
  reason?: string;
}

export interface Kind {
  name: string;
  weight: number;
  /** What one run adds to ollama_requests_total (none: not instrumented). */
  counts?: Count[];
  /** Run instead in the warm-up (long kinds), with its own counts. */
  warmup?: Kind;
  /** Not started when less than this is left of the run (kinds that take seconds). */
  needsMs?: number;
  /** Warmed up beside the other slow kinds instead of one after another (they wait on timeouts). */
  slowWarmup?: boolean;
  run(ctx: Ctx): Promise<Verdict>;
}

export interface Ctx {
  url: string;
  port: number;
  agent: http.Agent;
}

/** What one run of a kind found: whether the client got what it should, and if not, what. */
export interface Verdict {
  ok: boolean;
  why?: string;
}

export const c = (model: string, endpoint: string, status?: number, reason?: string): Count => ({ model, endpoint, status, reason });
/** Statuses and error reasons whose totals are checked (every kind that can produce them says so). */
export const STATUS_BOOKS = [408, 413, 503];
export const REASON_BOOKS = ['body_timeout', 'body_buffer_full', 'client_timeout'];

/** A model name as the gateway labels it (`:latest` added to a name without a tag). */
export const L = (m: string) => (m.includes(':') ? m : `${m}:latest`);
