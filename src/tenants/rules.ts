/**
 * What a tenant may do, as its entry in the tenants file says: the models it may use, and the
 * limits on its calls, and on each end user it asserts. Parsed and checked with the rest of the
 * file, so a file with a wrong limit is refused whole (at start, or kept out on a reload).
 *
 * ```yaml
 * time_zone: Europe/Berlin              # calendar windows (day, month); default UTC
 * tenants:
 *   - name: webui
 *     keys: [sk-webui]
 *     models: [llama3.2, "qwen3:*"]     # names or * patterns; absent: every model
 *     limits:
 *       requests_per_minute: 120
 *       tokens_per_day: 2000000
 *       gpu_seconds_per_month: 36000
 *       count_tokens: total             # total (default), input or output
 *       cached_tokens: 0.1              # a cached prompt token counts as this much (default 1)
 *       rolling: [{ seconds: 10, requests: 20 }]
 *     users:
 *       header: X-OpenWebUI-User-Id
 *       limits: { tokens_per_day: 200000 }   # each asserted end user
 * ```
 */

import { normalizeModelName } from '../request/model';

/** What a limit counts. */
export type Measure = 'requests' | 'tokens' | 'gpu_seconds';

/** Over which time a limit counts: a rolling window of `ms`, or the calendar day or month. */
export type Window = { kind: 'rolling'; ms: number } | { kind: 'day' } | { kind: 'month' };

export interface Limit {
  /** Its name as the file and the answers say it: `tokens_per_day`, `requests_per_10s`, … */
  name: string;
  measure: Measure;
  window: Window;
  max: number;
}

/** How a call's tokens count against a token limit. */
export interface TokenRule {
  count: 'total' | 'input' | 'output';
  /** The weight of a prompt token the KV cache served (0…1). */
  cachedWeight: number;
}

export interface LimitSet {
  limits: readonly Limit[];
  tokens: TokenRule;
}

export interface TenantRules {
  /** The models the tenant may use; undefined: every model. */
  models?: readonly ModelPattern[];
  /** Its own limits (over all its calls), when any. */
  tenant?: LimitSet;
  /** The limits each end user it asserts has, when any. */
  user?: LimitSet;
  /** The IANA time zone of its calendar windows. */
  timeZone: string;
}

/** The most limits of one set, and the longest rolling window. */
export const MAX_LIMITS = 16;
export const MAX_ROLLING_SECONDS = 86_400;
/** The most model patterns of one tenant. */
export const MAX_MODEL_PATTERNS = 200;

export class RulesError extends Error {}

/** The named limits of the contract: what each counts, and over which window. */
const NAMED: Readonly<Record<string, { measure: Measure; window: Window }>> = {
  requests_per_minute: { measure: 'requests', window: { kind: 'rolling', ms: 60_000 } },
  tokens_per_minute: { measure: 'tokens', window: { kind: 'rolling', ms: 60_000 } },
  tokens_per_day: { measure: 'tokens', window: { kind: 'day' } },
  tokens_per_month: { measure: 'tokens', window: { kind: 'month' } },
  gpu_seconds_per_day: { measure: 'gpu_seconds', window: { kind: 'day' } },
  gpu_seconds_per_month: { measure: 'gpu_seconds', window: { kind: 'month' } },
};

/** The limit names the file knows, for its error messages and the README. */
export const LIMIT_NAMES = Object.keys(NAMED);

const DEFAULT_TOKENS: TokenRule = { count: 'total', cachedWeight: 1 };

/** Whether `tz` is a time zone this Node.js knows. */
export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function positive(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RulesError(`${what} must be a number of at least 0`);
  return v;
}

/** A `limits:` block; undefined when absent or empty. `inherit`: the token rule when the block gives none. */
export function parseLimits(raw: unknown, where: string, inherit: TokenRule = DEFAULT_TOKENS): LimitSet | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new RulesError(`${where}: limits must be a mapping, e.g. { tokens_per_day: 200000 }`);
  const block = raw as Record<string, unknown>;
  const limits: Limit[] = [];
  let count = inherit.count;
  let cachedWeight = inherit.cachedWeight;
  for (const [key, value] of Object.entries(block)) {
    if (key === 'count_tokens') {
      if (value !== 'total' && value !== 'input' && value !== 'output') throw new RulesError(`${where}: limits.count_tokens must be total, input or output`);
      count = value;
    } else if (key === 'cached_tokens') {
      const w = positive(value, `${where}: limits.cached_tokens`);
      if (w > 1) throw new RulesError(`${where}: limits.cached_tokens is the weight of a cached token, 0 to 1`);
      cachedWeight = w;
    } else if (key === 'rolling') {
      if (!Array.isArray(value)) throw new RulesError(`${where}: limits.rolling must be a list of { seconds, requests, tokens, gpu_seconds }`);
      value.forEach((entry: unknown, i) => {
        const at = `${where}: limits.rolling[${i}]`;
        if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new RulesError(`${at} must be a mapping`);
        const e = entry as Record<string, unknown>;
        const seconds = e.seconds;
        if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MAX_ROLLING_SECONDS)
          throw new RulesError(`${at}.seconds must be a whole number of seconds from 1 to ${MAX_ROLLING_SECONDS}`);
        let any = false;
        for (const [k, v] of Object.entries(e)) {
          if (k === 'seconds') continue;
          if (k !== 'requests' && k !== 'tokens' && k !== 'gpu_seconds')
            throw new RulesError(`${at}: unknown field ${JSON.stringify(k)}; use requests, tokens or gpu_seconds`);
          limits.push({ name: `${k}_per_${seconds}s`, measure: k, window: { kind: 'rolling', ms: seconds * 1000 }, max: positive(v, `${at}.${k}`) });
          any = true;
        }
        if (!any) throw new RulesError(`${at} limits nothing: give requests, tokens or gpu_seconds`);
      });
    } else if (key === 'time_zone') {
      // Taken silently, it would leave the windows in another zone than the one written.
      throw new RulesError(`${where}: time_zone belongs to the tenant (beside limits:, or at the top of the file), not inside limits`);
    } else {
      const named = NAMED[key];
      if (!named)
        throw new RulesError(`${where}: unknown limit ${JSON.stringify(key)}; known: ${LIMIT_NAMES.join(', ')}, rolling, count_tokens, cached_tokens`);
      limits.push({ name: key, ...named, max: positive(value, `${where}: limits.${key}`) });
    }
  }
  if (limits.length > MAX_LIMITS) throw new RulesError(`${where}: at most ${MAX_LIMITS} limits`);
  const names = new Set(limits.map((l) => l.name));
  if (names.size !== limits.length) throw new RulesError(`${where}: a limit is given twice`);
  return limits.length === 0 ? undefined : { limits, tokens: { count, cachedWeight } };
}

/** A model name or pattern (`*` any run of characters, the tag included), compared without case, as Ollama names models. */
export interface ModelPattern {
  text: string;
  test(model: string): boolean;
}

const MODEL_PATTERN = /^[A-Za-z0-9_.:/*@+-]{1,256}$/;

export function modelPattern(text: string): ModelPattern {
  // A name without a tag is the `latest` tag's, as Ollama reads it (and as the call's name is
  // checked: a `:` before the last `/` is a registry's port, not a tag). A pattern is matched as
  // written against the whole name, tag included (`qwen3:*`, `*-cloud`).
  const full = text.includes('*') ? text.toLowerCase() : checkedModelName(text);
  if (!full.includes('*')) return { text, test: (m) => m === full };
  const parts = full.split('*');
  return {
    text,
    // Greedy-free glob: each fixed part found in order, no backtracking (linear in the name).
    test: (m) => {
      if (!m.startsWith(parts[0]!)) return false;
      let at = parts[0]!.length;
      for (let i = 1; i < parts.length - 1; i++) {
        const j = m.indexOf(parts[i]!, at);
        if (j < 0) return false;
        at = j + parts[i]!.length;
      }
      const last = parts[parts.length - 1]!;
      return m.length - last.length >= at && m.endsWith(last);
    },
  };
}

/** The model name a call is checked under: as Ollama resolves it (`:latest` when it names no tag), in lower case. */
export function checkedModelName(model: string): string {
  return normalizeModelName(model).toLowerCase();
}

/** The rules of one tenants-file entry. `defaultTimeZone`: the file's `time_zone`, or UTC. */
export function parseRules(e: Readonly<Record<string, unknown>>, name: string, defaultTimeZone = 'UTC'): TenantRules {
  const where = `tenant "${name}"`;
  const tzRaw = e.time_zone ?? defaultTimeZone;
  if (typeof tzRaw !== 'string' || !validTimeZone(tzRaw)) throw new RulesError(`${where}: time_zone must be an IANA time zone such as UTC or Europe/Berlin`);
  let models: ModelPattern[] | undefined;
  if (e.models !== undefined && e.models !== null) {
    const list = typeof e.models === 'string' ? [e.models] : e.models;
    if (!Array.isArray(list)) throw new RulesError(`${where}: models must be a list of model names or * patterns`);
    if (list.length > MAX_MODEL_PATTERNS) throw new RulesError(`${where}: at most ${MAX_MODEL_PATTERNS} models`);
    models = list.map((m: unknown, i) => {
      if (typeof m !== 'string' || !MODEL_PATTERN.test(m)) throw new RulesError(`${where}: models[${i}] must be a model name or a * pattern`);
      return modelPattern(m);
    });
  }
  const tenant = parseLimits(e.limits, where);
  const users = e.users;
  const userLimits =
    users !== null && typeof users === 'object' && !Array.isArray(users)
      ? parseLimits((users as Record<string, unknown>).limits, `${where}: users`, tenant?.tokens)
      : undefined;
  return { models, tenant, user: userLimits, timeZone: tzRaw };
}
