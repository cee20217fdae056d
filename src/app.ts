/**
 * Where a request goes. One dispatcher, driven by the endpoint tables in `routes.ts`:
 *
 *   normalise the target (request/target.ts) → the gateway's own endpoints (endpoints/own.ts;
 *   GET and HEAD only, never forwarded) → API-key check → instrumented LLM routes (llm-call.ts)
 *   → everything else passed through to Ollama unchanged (endpoints/pass-through.ts).
 *
 * Nothing a request or Ollama does may throw out of here: an unexpected error ends that one
 * request (500 if nothing was sent yet, else the connection is cut) with one ERROR log line.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { clipText } from '../otel/labels';
import type { Telemetry } from '../otel/recorder';
import type { Exposition, ExpositionFormat } from '../otel/sdk';
import { anthropicKeyPath, BearerKeys, type AuthFailure } from './auth';
import { requireLedgerForLimits, tenantsOfKeys, type TenantSpec } from './tenants/file';
import { Tenants, type CallIdentity } from './tenants/registry';
import type { UsageQuery, UsageRow } from './ledger/schema';
import { ollamaOrigins, type Config } from './config';
import { consoleEndpoints, type ConsoleDeps } from './endpoints/console';
import { ownEndpoints } from './endpoints/own';
import { passThrough, type PassThroughDeps } from './endpoints/pass-through';
import { ConcurrencyLimit } from './limit';
import { withinRequest } from './last-resort';
import { handleLlmCall, type LlmCallDeps } from './llm-call';
import { loggedPath, type Logger } from './logger';
import { apiOf, sendJsonError } from './proxy/errors';
import type { Upstream } from './proxy/upstream';
import { Fleet, type Backend } from './fleet/backends';
import type { BodyBudget } from './request/body';
import { normalizeTarget } from './request/target';
import { GATEWAY_ENDPOINTS, isConsolePath, LLM_ROUTE_BY_PATH } from './routes';
import type { FairQueue } from './scheduler/fair-queue';
import type { Budgets } from './budgets/book';
import { policyOf } from './scheduler/tenant';

export interface GatewayDeps {
  config: Config;
  log: Logger;
  telemetry: Telemetry;
  /** The memory shared by all request bodies being held. */
  bodyBudget: BodyBudget;
  /** The Prometheus exposition of every metric. */
  scrape: (format?: ExpositionFormat) => Promise<Exposition>;
  /** The backends, when made by the caller (otherwise made from `config.upstreams`). */
  fleet?: Fleet;
  /** This gateway's name in `Via` (made here when not given). */
  pseudonym?: string;
  /** The fair queue in front of the backends (BACKEND_PARALLEL), when on. */
  scheduler?: FairQueue;
  /** The web console's readers, when CONSOLE is on. */
  console?: Pick<ConsoleDeps, 'snapshot' | 'backends' | 'about' | 'queues'>;
  /** The tenants (made from the configuration when not given). */
  tenants?: Tenants;
  /** Reads the usage ledger, when it is on. */
  usage?: (q: UsageQuery) => Promise<UsageRow[]>;
  /** The tenants' model allow-lists, budgets and rate limits. */
  budgets?: Budgets;
}

export interface Gateway {
  /** The HTTP request handler. */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** The Ollama servers. */
  fleet: Fleet;
  /** Who may call, and as which tenant. */
  tenants: Tenants;
  /** The first (with one backend, the only) Ollama's connection. */
  upstream: Upstream;
  /**
   * Asks Ollama for its version (with several backends, each routable one in turn until one
   * answers); rejects with a readable reason when none does.
   */
  ollamaVersion(timeoutMs?: number): Promise<string>;
  close(): void;
}

const READY_TIMEOUT_MS = 2000;

/**
 * Names the backend a request must go to, among the configured ones only (never a free-form
 * host). Read by the gateway and never forwarded.
 */
export const BACKEND_HEADER = 'x-ollama-backend';

const ignore = (): void => {};

/** Network errors a client causes by going away or sending garbage: not the gateway's failures. */
const CLIENT_NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'HPE_INVALID_CHUNK_SIZE']);

/**
 * Most requests one connection may have waiting for their answers at once. Node starts handling
 * pipelined requests as they arrive; without a bound, one connection could open thousands of calls
 * to Ollama. Browsers and SDKs send one at a time; a connection past this is closed.
 */
const MAX_PIPELINED = 16;
const OUTSTANDING = Symbol('ollama-gateway.outstanding');

function admitPipelined(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const socket = req.socket as http.IncomingMessage['socket'] & { [OUTSTANDING]?: number };
  const n = (socket[OUTSTANDING] ?? 0) + 1;
  if (n > MAX_PIPELINED) return false;
  socket[OUTSTANDING] = n;
  let counted = true;
  const done = () => {
    if (!counted) return;
    counted = false;
    socket[OUTSTANDING] = (socket[OUTSTANDING] ?? 1) - 1;
  };
  // 'close' follows 'finish' on every response that gets its turn; a response still waiting when
  // the connection goes has no turn, and its socket's count no longer matters.
  res.once('close', done);
  return true;
}

/** Ends a request whose handling threw. */
function internalError(log: Logger, req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
  const e = err as NodeJS.ErrnoException;
  if (e?.code && CLIENT_NETWORK_ERRORS.has(e.code)) {
    log.debug({ method: req.method, path: loggedPath(req), error: e.code }, 'client connection failed');
  } else {
    log.error({ method: req.method, path: loggedPath(req), error: e?.message ?? String(err), stack: e?.stack }, 'request handling failed');
  }
  if (!res.headersSent && !res.destroyed) sendJsonError(res, apiOf(req.url ?? '/'), 500, 'internal error in the gateway');
  else res.destroy();
}

export function createGateway(deps: GatewayDeps): Gateway {
  const { config, log, telemetry } = deps;
  const pseudonym = deps.pseudonym ?? `ollama-otel-gateway-${randomBytes(6).toString('hex')}`;
  const fleet = deps.fleet ?? new Fleet(config.upstreams, config.upstreamIdleTimeoutMs, pseudonym, log, config.pollIntervalMs > 0);
  const upstream = fleet.backends[0]!.upstream;
  const ollamaVersion = async (timeoutMs = READY_TIMEOUT_MS): Promise<string> => {
    let failure: unknown;
    for (const b of fleet.healthy()) {
      try {
        const body = (await b.upstream.getJson('/api/version', timeoutMs)) as { version?: unknown };
        return typeof body?.version === 'string' ? body.version : 'unknown';
      } catch (err) {
        failure ??= err;
      }
    }
    throw failure;
  };
  const own = ownEndpoints({
    ollama: ollamaOrigins(config),
    // With several, /readyz says which backend is in rotation.
    backends: fleet.routed ? () => fleet.load().map((b) => ({ name: b.name, healthy: b.healthy })) : undefined,
    ollamaVersion,
    scrape: deps.scrape,
    log,
  });
  // Read only once a call or the console asks, after `tenantEntry` below is made.
  const tenantPolicy = (name: string) => policyOf(name, tenantEntry(name), config.tenantPolicies?.get(name));
  const llmDeps: LlmCallDeps = {
    fleet,
    affinity: config.routingAffinity === 'prefix',
    // With the fair queue, MAX_CONCURRENT_REQUESTS is its cap over all backends' slots instead.
    limit: config.maxConcurrentRequests && !deps.scheduler ? new ConcurrencyLimit(config.maxConcurrentRequests, config.queueTimeoutMs) : undefined,
    scheduler: deps.scheduler,
    tenantPolicy,
    budgets: deps.budgets,
    telemetry,
    log,
    body: {
      maxBytes: config.maxRequestBodyBytes,
      budget: deps.bodyBudget,
      idleTimeoutMs: config.requestBodyTimeoutMs,
      deadlineMs: config.requestBodyDeadlineMs,
    },
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    clientWriteTimeoutMs: config.clientWriteTimeoutMs,
    queueTimeoutMs: config.queueTimeoutMs,
    serverTiming: config.serverTiming,
  };
  const passDeps: PassThroughDeps = {
    fleet,
    log,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    clientWriteTimeoutMs: config.clientWriteTimeoutMs,
    body: llmDeps.body,
  };
  const tenants = deps.tenants ?? tenantsFromConfig(config);
  // The tenants file's entries by name, for the fair queue's weights; made again after a reload.
  let entries: { specs: readonly TenantSpec[]; byName: Map<string, TenantSpec['raw']> } | undefined;
  const tenantEntry = (name: string): TenantSpec['raw'] | undefined => {
    const specs = tenants.specs;
    if (entries?.specs !== specs) entries = { specs, byName: new Map(specs.map((t) => [t.name, t.raw])) };
    return entries.byName.get(name);
  };
  const metricsToken = config.metricsBearerToken ? new BearerKeys([config.metricsBearerToken]) : undefined;
  const consoleHandler = deps.console
    ? consoleEndpoints({
        ...deps.console,
        tokens: config.metricsBearerToken ? [config.metricsBearerToken] : [],
        // METRICS_BEARER_TOKEN is the operator's and sees every tenant; a tenant's key (one of
        // GATEWAY_API_KEYS is a tenant too) sees its own tenant's usage and calls.
        authorize: (authorization) => {
          if (!metricsToken && !tenants.enabled) return {};
          if (metricsToken && metricsToken.check(authorization) === undefined) return {};
          if (tenants.enabled) {
            const admission = tenants.admit(authorization);
            return admission.failure ? { failure: admission.failure } : { tenant: admission.identity.tenant };
          }
          return { failure: metricsToken!.check(authorization)! };
        },
        usage: deps.usage,
        budgets: {
          tenants: () => tenants.names,
          snapshot: (names, usersPerTenant) => deps.budgets?.snapshot(names, usersPerTenant) ?? Promise.resolve({ states: [], usersSeen: new Map() }),
          userLimits: (name) => tenants.spec(name)?.rules?.user?.limits,
          policy: tenantPolicy,
          waits: deps.scheduler && (() => deps.scheduler!.waits()),
        },
        onAuthFailure: (failure) => telemetry.authFailure(failure, 'console'),
        log,
      })
    : undefined;

  const refuse = (res: http.ServerResponse, path: string, scope: 'api' | 'metrics', failure: AuthFailure): void => {
    telemetry.authFailure(failure, scope);
    const api = apiOf(path);
    // Each refusal names what it wants: /metrics takes the metrics token, not an API key.
    let message: string;
    if (scope === 'metrics') {
      message =
        failure === 'missing' ? 'missing metrics token: send Authorization: Bearer <METRICS_BEARER_TOKEN>' : 'invalid metrics token (METRICS_BEARER_TOKEN)';
    } else {
      const how = anthropicKeyPath(path) ? 'x-api-key: <key> or Authorization: Bearer <key>' : 'Authorization: Bearer <key>';
      message = failure === 'missing' ? `missing API key: send ${how}` : 'invalid API key';
    }
    sendJsonError(res, api, 401, message, { 'www-authenticate': 'Bearer' });
  };

  const dispatch = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const target = normalizeTarget(req.url ?? '/');
    if (!target) {
      sendJsonError(res, 'ollama', 400, 'the request target must be a path (/…) or an absolute http(s) URL', { connection: 'close' });
      return;
    }
    // The one spelling of the path: routed on here and forwarded as is.
    req.url = target.path + target.query;
    const path = target.path;

    const via = req.headers.via;
    if (via !== undefined && (Array.isArray(via) ? via.join(',') : via).includes(pseudonym)) {
      // This gateway sent the request itself: OLLAMA_HOST, or a proxy after it, points back here.
      log.error(
        { method: req.method, path: loggedPath(req), via: clipText(String(via), 512) },
        'request came back to the gateway: OLLAMA_HOST leads to a loop',
      );
      sendJsonError(res, apiOf(path), 508, 'loop detected: OLLAMA_HOST leads back to this gateway', { connection: 'close' });
      return;
    }
    if (consoleHandler && isConsolePath(path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') sendJsonError(res, 'ollama', 405, `${path} answers GET and HEAD only`, { allow: 'GET, HEAD' });
      else consoleHandler(req, res, path, target.query);
      return;
    }
    const scope = GATEWAY_ENDPOINTS.get(path);
    if (scope !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJsonError(res, 'ollama', 405, `${path} answers GET and HEAD only`, { allow: 'GET, HEAD' });
        return;
      }
      const failure = scope === 'metrics' ? metricsToken?.check(req.headers.authorization) : undefined;
      if (failure) refuse(res, path, 'metrics', failure);
      else void own(req, res);
      return;
    }
    // Where an Anthropic client calls, the key may come in `x-api-key`, Anthropic's own API-key header.
    const anthropic = anthropicKeyPath(path);
    const admission = tenants.admit(req.headers.authorization, anthropic ? req.headers['x-api-key'] : undefined);
    const failure = admission.failure;
    if (tenants.enabled) {
      if (failure) {
        log.info({ method: req.method, path: loggedPath(req), status: 401, error: `api_key_${failure}` }, 'request refused');
        refuse(res, path, 'api', failure);
        return;
      }
      // The key is the gateway's; Ollama never sees it, in either header, on any path.
      delete req.headers.authorization;
      delete req.headers['x-api-key'];
    }
    const identity: CallIdentity = admission.identity!;
    tenants.assertUser(identity, req.headers);
    let pinned: Backend | undefined;
    const named = req.headers[BACKEND_HEADER];
    if (named !== undefined) {
      // The gateway's header, never Ollama's; it selects among the configured backends only.
      delete req.headers[BACKEND_HEADER];
      pinned = typeof named === 'string' ? fleet.get(named.trim()) : undefined;
      if (!pinned) {
        log.info({ method: req.method, path: loggedPath(req), status: 400, error: 'unknown_backend' }, 'request refused');
        sendJsonError(res, apiOf(path), 400, `X-Ollama-Backend must name one of the configured backends: ${fleet.backends.map((b) => b.name).join(', ')}`);
        return;
      }
    }
    const route = req.method === 'POST' ? LLM_ROUTE_BY_PATH.get(path) : undefined;
    if (route) handleLlmCall(llmDeps, route, req, res, pinned, identity).catch((err: unknown) => internalError(log, req, res, err));
    else passThrough(passDeps, req, res, pinned);
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // Errors on either side of the client's connection end that exchange (the readers see
    // `close`); they are never the process's.
    req.on('error', ignore);
    res.on('error', ignore);
    if (!admitPipelined(req, res)) {
      log.debug({ max: MAX_PIPELINED }, 'client pipelined too many requests on one connection; closed it');
      req.socket.destroy();
      return;
    }
    try {
      withinRequest(req, res, () => dispatch(req, res));
    } catch (err) {
      internalError(log, req, res, err);
    }
  };

  return {
    handler,
    fleet,
    tenants,
    upstream,
    ollamaVersion,
    close: () => {
      fleet.close();
      tenants.close();
    },
  };
}

/** The tenants of the tenants file, or one per GATEWAY_API_KEYS key, or none (every call `anonymous`). */
export function tenantsFromConfig(config: Config): Tenants {
  const file = config.tenantsFile;
  return file ? new Tenants(file.tenants, file, (specs) => requireLedgerForLimits(specs, config.ledgerUrl)) : new Tenants(tenantsOfKeys(config.apiKeys));
}
