/**
 * How a call refused by a budget or a model allow-list is answered, in its API family's words:
 * `429` with `Retry-After` (and `retry-after-ms`, which the OpenAI and Anthropic SDKs read first),
 * the rate-limit headers each SDK knows (`x-ratelimit-*` on OpenAI's routes, `anthropic-ratelimit-*`
 * on `/v1/messages`), and `x-ollama-gateway-limit` naming the limit; `403` for a model the tenant
 * may not use. Pure: the call sends what this returns.
 */
import type { ApiFamily } from '../routes';
import type { OpenAiErrorFields } from '../proxy/errors';
import type { LimitState } from './book';

export interface Refusal {
  status: number;
  message: string;
  headers: Record<string, string>;
  openai?: OpenAiErrorFields;
}

const UNITS: Readonly<Record<string, string>> = { requests: 'requests', tokens: 'tokens', gpu_seconds: 'GPU seconds' };

/** A duration as OpenAI's reset headers write it: `20ms`, `1s`, `6m0s`, `1h2m3s`. */
export function resetDuration(ms: number): string {
  // Rounded up first, so 999.5 ms is `1s`, never `1000ms`.
  const whole = Math.ceil(ms);
  if (whole < 1000) return `${Math.max(0, whole)}ms`;
  const s = Math.ceil(whole / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`;
}

/** RFC 3339 to the second, as Anthropic's reset headers write it. */
const rfc3339 = (t: number): string => new Date(Math.ceil(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** Whose limit a state is, in a sentence. */
function whose(s: LimitState): string {
  return s.scope === 'user' ? `end user "${s.user}" of tenant "${s.tenant}"` : `tenant "${s.tenant}"`;
}

/** Of the states of one measure, the tightest: least left, then the one that frees last. */
function tightest(states: readonly LimitState[], measure: 'requests' | 'tokens'): LimitState | undefined {
  let best: LimitState | undefined;
  for (const s of states) {
    if (s.limit.measure !== measure) continue;
    if (!best || s.remaining < best.remaining || (s.remaining === best.remaining && s.resetAt > best.resetAt)) best = s;
  }
  return best;
}

/** The rate-limit headers of an API family for the states of a call's limits. */
export function rateLimitHeaders(api: ApiFamily, states: readonly LimitState[], now: number): Record<string, string> {
  const h: Record<string, string> = {};
  for (const measure of ['requests', 'tokens'] as const) {
    const s = tightest(states, measure);
    if (!s) continue;
    const remaining = String(Math.floor(s.remaining));
    if (api === 'openai') {
      h[`x-ratelimit-limit-${measure}`] = String(s.limit.max);
      h[`x-ratelimit-remaining-${measure}`] = remaining;
      h[`x-ratelimit-reset-${measure}`] = resetDuration(s.resetAt - now);
    } else if (api === 'anthropic') {
      h[`anthropic-ratelimit-${measure}-limit`] = String(s.limit.max);
      h[`anthropic-ratelimit-${measure}-remaining`] = remaining;
      h[`anthropic-ratelimit-${measure}-reset`] = rfc3339(s.resetAt);
    }
  }
  return h;
}

/**
 * The rate-limit headers of an admitted call's answer, as OpenAI's and Anthropic's APIs send them on
 * every answer (the call itself is one of the requests used). Name, value pairs; none for Ollama's API.
 */
export function admittedHeaders(api: ApiFamily, states: readonly LimitState[], now: number): string[] {
  if (api === 'ollama' || states.length === 0) return [];
  const counted = states.map((s) => (s.limit.measure === 'requests' ? { ...s, used: s.used + 1, remaining: Math.max(0, s.remaining - 1) } : s));
  return Object.entries(rateLimitHeaders(api, counted, now)).flat();
}

/** The answer to a call that would start past `exceeded`. */
export function rateLimited(api: ApiFamily, exceeded: LimitState, states: readonly LimitState[], now: number): Refusal {
  const waitMs = Math.max(1, exceeded.resetAt - now);
  const unit = UNITS[exceeded.limit.measure] ?? exceeded.limit.measure;
  const used = Number.isInteger(exceeded.used) ? exceeded.used : exceeded.used.toFixed(1);
  const message =
    `Rate limit reached for ${whose(exceeded)} on ${exceeded.limit.name}: limit ${exceeded.limit.max} ${unit}, used ${used}. ` +
    `It resets at ${new Date(exceeded.resetAt).toISOString()}; try again in ${resetDuration(waitMs)}.`;
  return {
    status: 429,
    message,
    headers: {
      'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))),
      'retry-after-ms': String(Math.ceil(waitMs)),
      'x-ollama-gateway-limit': `${exceeded.limit.name}; scope=${exceeded.scope}; reset=${new Date(exceeded.resetAt).toISOString()}`,
      ...rateLimitHeaders(api, states, now),
    },
    openai: { type: exceeded.limit.measure === 'requests' ? 'requests' : 'tokens', code: 'rate_limit_exceeded' },
  };
}

/** The answer to a call for a model its tenant may not use. */
export function modelRefused(tenant: string, model: string, allowed: readonly string[]): Refusal {
  const list = allowed.slice(0, 20).join(', ') + (allowed.length > 20 ? ', …' : '');
  return {
    status: 403,
    message: `tenant "${tenant}" may not use model "${model.slice(0, 256)}"; its models: ${list}`,
    headers: {},
    openai: { type: 'invalid_request_error', code: 'model_not_allowed' },
  };
}
