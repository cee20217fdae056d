/**
 * The web console: a read-only page at `/console/` and the JSON API behind it at
 * `/console/api/v1/…`. The data comes only through the injected readers (the history's snapshot,
 * the poller's view of Ollama), so a gateway of several processes can hand in the merged history.
 *
 * The page and its assets are files read once at start from the package's `src/console/assets/`;
 * a request names one of them exactly, or gets a 404, so no request path reaches the file system.
 * The page holds no data and loads without a token; the API needs one when METRICS_BEARER_TOKEN or
 * API keys are set. METRICS_BEARER_TOKEN (the operator's) sees every tenant; a tenant's key sees
 * its own tenant's usage, calls, budgets and queue, and the fleet's shared state (backends,
 * models), never another tenant's. Everything is sent with a `default-src 'self'`
 * Content-Security-Policy: the page loads nothing from anywhere but the gateway.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ConsoleSnapshot } from '../../otel/history/snapshot';
import { series, summaries } from '../../otel/history/view';
import type { OllamaState } from '../../otel/state';
import { BearerKeys, type AuthFailure } from '../auth';
import type { Logger } from '../logger';
import type { TenantQueue, TenantWaits } from '../scheduler/fair-queue';
import type { TenantPolicy } from '../scheduler/tenant';
import type { BudgetSnapshot } from '../budgets/book';
import type { Limit } from '../tenants/rules';
import { budgetsView, USERS_PER_TENANT } from './budgets';
import { CONSOLE_PREFIX } from '../routes';
import { usageAnswer } from '../ledger/api';
import type { UsageQuery, UsageRow } from '../ledger/schema';

/** The API's version, the `v1` of its paths. */
export const CONSOLE_API_VERSION = 1;

/** One Ollama the gateway sends to, and the poller's latest view of it. */
export interface BackendState {
  /** The backend's name (`host:port` as configured; the `backend` label with several). */
  name: string;
  origin: string;
  /** Whether the gateway polls it (OLLAMA_POLL_INTERVAL_SECONDS > 0). */
  polled: boolean;
  /** Undefined before the first poll finished, or when not polled. */
  state: OllamaState | undefined;
}

export interface ConsoleDeps {
  /** The history, of every process serving the gateway. */
  snapshot: () => Promise<ConsoleSnapshot>;
  backends: () => BackendState[];
  /** The fair queue per tenant (calls waiting and running), when BACKEND_PARALLEL is on. */
  queues: () => readonly TenantQueue[];
  /** Tokens the API accepts (METRICS_BEARER_TOKEN and the API keys); none: the API is open. */
  tokens: readonly string[];
  onAuthFailure: (failure: AuthFailure) => void;
  /** Checks a request's `Authorization` instead of `tokens`, when given: who may see what, or why not. */
  authorize?: (authorization: string | undefined) => ConsoleAccess;
  /** The tenants' budgets and their fair-queue standing, for `/budgets`. */
  budgets?: BudgetsReader;
  /** Reads the usage ledger; without it `/usage` answers 404. */
  usage?: (q: UsageQuery) => Promise<UsageRow[]>;
  /** `workers`: GATEWAY_WORKERS, so the page can say that a replaced worker's history is gone. */
  about: { version: string; startedAt: number; tracing: boolean; contentCapture: boolean; workers: number; traceUiUrl?: string };
  log: Logger;
  /** Where the page's files are (tests); the package's own by default. */
  assetsDir?: string;
}

/**
 * Who is asking: refused (`failure`), one tenant (its key: `tenant`), or the operator
 * (METRICS_BEARER_TOKEN, or a gateway with no token and no keys: neither set), who sees all.
 */
export type ConsoleAccess = { failure: AuthFailure; tenant?: undefined } | { failure?: undefined; tenant?: string };

/** What `/budgets` reads, when asked. */
export interface BudgetsReader {
  /** The tenants, in the configuration's order. */
  tenants: () => readonly string[];
  /** The limits of `tenants` and of at most `usersPerTenant` of each one's end users. */
  snapshot: (tenants: readonly string[], usersPerTenant: number) => Promise<BudgetSnapshot>;
  /** The limits each end user of `tenant` has, when it has any. */
  userLimits: (tenant: string) => readonly Limit[] | undefined;
  policy: (tenant: string) => TenantPolicy;
  /** The fair queue's waits per tenant, when BACKEND_PARALLEL is on. */
  waits?: () => ReadonlyMap<string, TenantWaits>;
}

/** `/console/api/v1/budgets`: the tenants `viewer` may see (all when undefined). */
async function budgetsAnswer(deps: ConsoleDeps, viewer: string | undefined): Promise<unknown> {
  const reader = deps.budgets;
  const names = reader?.tenants() ?? [];
  const tenants = viewer === undefined ? names : names.filter((t) => t === viewer);
  const limits = reader ? await reader.snapshot(tenants, USERS_PER_TENANT) : { states: [], usersSeen: new Map<string, number>() };
  const waits = reader?.waits?.();
  const now = Date.now();
  const view = budgetsView({
    now,
    tenants,
    limits,
    userLimits: (t) => reader?.userLimits(t),
    queue: waits && { tenants: deps.queues(), waits },
    policy: (t) => reader?.policy(t) ?? { name: t, weight: 1, priority: 'interactive' },
  });
  return { version: CONSOLE_API_VERSION, time: now, ...view };
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, path: string, query: string) => void;

/** The package root: three folders up from `dist/src/endpoints/` or `.build/src/endpoints/`. */
export const CONSOLE_ASSETS_DIR = path.join(__dirname, '..', '..', '..', 'src', 'console', 'assets');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Sent with everything under /console. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Reads the page's files: plain names with a known type, nothing in sub-folders. */
export function loadAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (!type || !/^[a-z0-9][a-z0-9.-]*$/.test(name)) continue;
    const body = readFileSync(path.join(dir, name));
    out.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  if (!out.has('index.html')) throw new Error(`the console's page is missing: no index.html in ${dir}`);
  return out;
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string | number>, body: string | Buffer): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers, 'content-length': bytes.length });
  res.end(bytes);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  send(res, status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extra }, JSON.stringify(value));
}

class BadQuery extends Error {}

/** A whole number query parameter within [min, max] written in decimal digits, or `def` when absent. */
function intParam(q: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return def;
  const n = /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new BadQuery(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

/** Most answers kept per snapshot (distinct parameters); past it, answers are computed each time. */
const ANSWERS_PER_SNAPSHOT = 128;

/**
 * The answers computed from one snapshot, by what was asked: while a snapshot is reused, the same
 * question costs its computation and serialisation once, however many pages or clients ask it.
 */
class Answers {
  private readonly bySnapshot = new WeakMap<ConsoleSnapshot, Map<string, string>>();

  get(snap: ConsoleSnapshot, key: string, compute: () => unknown): string {
    let answers = this.bySnapshot.get(snap);
    if (!answers) {
      answers = new Map();
      this.bySnapshot.set(snap, answers);
    }
    let body = answers.get(key);
    if (body === undefined) {
      body = JSON.stringify(compute());
      if (answers.size < ANSWERS_PER_SNAPSHOT) answers.set(key, body);
    }
    return body;
  }
}

/** The summaries of one snapshot over `minutes`, made once per snapshot and window. */
const summariesOf = (() => {
  const made = new WeakMap<ConsoleSnapshot, Map<number, ReturnType<typeof summaries>>>();
  return (snap: ConsoleSnapshot, minutes: number): ReturnType<typeof summaries> => {
    let byMinutes = made.get(snap);
    if (!byMinutes) {
      byMinutes = new Map();
      made.set(snap, byMinutes);
    }
    let sum = byMinutes.get(minutes);
    if (!sum) {
      sum = summaries(snap, minutes);
      byMinutes.set(minutes, sum);
    }
    return sum;
  };
})();

/** The `model` parameter: one of the history's labels (at most 256 characters), or undefined. */
function modelParam(q: URLSearchParams): string | undefined {
  const raw = q.get('model');
  if (raw === null || raw === '') return undefined;
  if (raw.length > 256) throw new BadQuery('model must be at most 256 characters');
  return raw;
}

/** Seconds until `ms` (epoch), never below 0. */
const secondsUntil = (ms: number | undefined, now: number): number | null => (ms === undefined ? null : Math.max(0, (ms - now) / 1000));

/**
 * `/console/api/v1/now`: Ollama's state and what is in flight, as of the snapshot (computed and
 * serialised once per snapshot however many ask; what a poll contributes is bounded in src/poller.ts).
 */
function nowView(deps: ConsoleDeps, snap: ConsoleSnapshot, viewer: string | undefined): unknown {
  const now = snap.takenAt;
  const inFlight = new Map(snap.models.map((m) => [m.model, m.inFlight]));
  return {
    version: CONSOLE_API_VERSION,
    time: now,
    gateway: {
      version: deps.about.version,
      uptimeSeconds: Math.max(0, (now - deps.about.startedAt) / 1000),
      tracing: deps.about.tracing,
      contentCapture: deps.about.contentCapture,
      workers: deps.about.workers,
      usage: deps.usage !== undefined,
    },
    inFlight: snap.models.reduce((n, m) => n + m.inFlight, 0),
    // This process's fair queue: per tenant with calls waiting or running.
    queues: viewer === undefined ? deps.queues() : deps.queues().filter((q) => q.tenant === viewer),
    backends: deps.backends().map((b) => ({
      name: b.name,
      origin: b.origin,
      polled: b.polled,
      up: b.state ? b.state.up : null,
      ollamaVersion: b.state?.up ? (b.state.version ?? null) : null,
      available: b.state?.up ? (b.state.available ?? null) : null,
      loaded: (b.state?.up ? (b.state.loaded ?? []) : []).map((m) => ({
        model: m.model,
        bytes: m.bytes,
        vramBytes: m.vramBytes,
        vramRatio: m.bytes > 0 ? m.vramBytes / m.bytes : null,
        unloadInSeconds: secondsUntil(m.expiresAtMs, now),
        contextLength: m.contextLength ?? null,
        inFlight: inFlight.get(m.model) ?? 0,
      })),
    })),
  };
}

const ONE_HOUR_MINUTES = 60;

/**
 * A page polls its three API paths at once, and several pages may be open: one snapshot serves
 * every request within this many milliseconds of it.
 */
const SNAPSHOT_REUSE_MS = 500;

function reused(take: () => Promise<ConsoleSnapshot>): () => Promise<ConsoleSnapshot> {
  let last: { at: number; snap: Promise<ConsoleSnapshot> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at > SNAPSHOT_REUSE_MS) {
      last = { at: now, snap: take() };
      // A failed snapshot is not kept for the next request.
      last.snap.catch(() => (last = undefined));
    }
    return last.snap;
  };
}

/** The request handler for every path under `/console`; the dispatcher has refused other methods. */
export function consoleEndpoints(deps: ConsoleDeps): Handler {
  const snapshot = reused(deps.snapshot);
  const answers = new Answers();
  const assets = loadAssets(deps.assetsDir ?? CONSOLE_ASSETS_DIR);
  const keys = new BearerKeys(deps.tokens);
  const index = assets.get('index.html')!;

  const api = async (req: http.IncomingMessage, res: http.ServerResponse, name: string, query: string): Promise<void> => {
    let viewer: string | undefined;
    if (deps.authorize || keys.enabled) {
      const access: ConsoleAccess = deps.authorize ? deps.authorize(req.headers.authorization) : { failure: keys.check(req.headers.authorization) };
      const failure = access.failure;
      viewer = access.tenant;
      if (failure) {
        deps.onAuthFailure(failure);
        const message = failure === 'missing' ? 'missing token: send Authorization: Bearer <METRICS_BEARER_TOKEN or an API key>' : 'invalid token';
        sendJson(res, 401, { error: message }, { 'www-authenticate': 'Bearer' });
        return;
      }
    }
    const q = new URLSearchParams(query);
    const json = (body: string) => send(res, 200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, body);
    try {
      switch (name) {
        case 'now': {
          const snap = await snapshot();
          json(answers.get(snap, `now\u0000${viewer ?? ''}`, () => nowView(deps, snap, viewer)));
          return;
        }
        case 'models': {
          const minutes = intParam(q, 'minutes', ONE_HOUR_MINUTES, 1, ONE_HOUR_MINUTES);
          const model = modelParam(q);
          const snap = await snapshot();
          json(
            answers.get(snap, `models\u0000${minutes}\u0000${model ?? ''}`, () => {
              const { models, all } = summariesOf(snap, minutes);
              return {
                version: CONSOLE_API_VERSION,
                time: snap.takenAt,
                minutes,
                bucketSeconds: snap.bucketMs / 1000,
                models,
                all,
                series: { model: model ?? null, ...series(snap, minutes, model) },
              };
            }),
          );
          return;
        }
        case 'calls': {
          const snap = await snapshot();
          const limit = intParam(q, 'limit', snap.recentLimit, 1, snap.recentLimit);
          const model = modelParam(q);
          json(
            answers.get(snap, `calls\u0000${limit}\u0000${model ?? ''}\u0000${viewer ?? ''}`, () => {
              // A tenant's key sees its own tenant's calls only (they name end users).
              const calls =
                model === undefined && viewer === undefined
                  ? snap.recent
                  : snap.recent.filter((c) => (model === undefined || c.model === model) && (viewer === undefined || c.tenant === viewer));
              const template = deps.about.traceUiUrl;
              const shown = calls.slice(0, limit);
              // With TRACE_UI_URL, each traced call links to its trace (the id is hex the gateway generated).
              const linked =
                template === undefined ? shown : shown.map((c) => (c.traceId ? { ...c, traceUrl: template.replace(/\{trace_id\}/g, c.traceId) } : c));
              return { version: CONSOLE_API_VERSION, time: snap.takenAt, calls: linked };
            }),
          );
          return;
        }
        case 'usage': {
          if (!deps.usage) {
            sendJson(res, 404, { error: 'the usage ledger is off (LEDGER_URL=off)' });
            return;
          }
          const answer = await usageAnswer(deps.usage, q, req.headers.accept, Date.now(), viewer);
          send(res, answer.status, { 'content-type': answer.type, 'cache-control': 'no-store' }, answer.body);
          return;
        }
        case 'budgets': {
          // A tenant's key sees its own tenant's budgets and queue (its end users are named there).
          sendJson(res, 200, await budgetsAnswer(deps, viewer));
          return;
        }
        default:
          sendJson(res, 404, { error: `no such console API: ${CONSOLE_PREFIX}/api/v1/{now,models,calls,usage,budgets}` });
      }
    } catch (err) {
      if (err instanceof BadQuery) sendJson(res, 400, { error: err.message });
      else throw err;
    }
  };

  return (req, res, urlPath, query) => {
    if (urlPath === CONSOLE_PREFIX) {
      // Relative, so a gateway behind a reverse proxy's path prefix keeps it.
      send(res, 308, { location: 'console/', 'content-type': 'text/plain; charset=utf-8' }, 'the console is at /console/\n');
      return;
    }
    const rest = urlPath.slice(CONSOLE_PREFIX.length + 1);
    const apiPath = /^api\/v1\/([a-z]+)$/.exec(rest);
    if (apiPath) {
      api(req, res, apiPath[1]!, query).catch((err: unknown) => {
        deps.log.error({ path: urlPath, error: (err as Error)?.message ?? String(err) }, 'console API request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error in the gateway' });
        else res.destroy();
      });
      return;
    }
    const asset = rest === '' ? index : assets.get(rest);
    if (!asset) {
      send(res, 404, { 'content-type': 'text/plain; charset=utf-8' }, 'not found\n');
      return;
    }
    const headers = { 'content-type': asset.type, 'cache-control': 'no-cache', etag: asset.etag };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, { ...SECURITY_HEADERS, ...headers });
      res.end();
      return;
    }
    send(res, 200, headers, asset.body);
  };
}
