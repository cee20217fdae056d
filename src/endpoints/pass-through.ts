/**
 * Everything that is neither the gateway's own nor an instrumented LLM route (model management,
 * listings, blob uploads, `GET /`): forwarded to Ollama and relayed back unchanged, through the same
 * guarded tap as LLM calls, with one access-log line.
 *
 * With several backends, the request goes to the backend `X-Ollama-Backend` names, else to the one
 * the README's rule picks (`managementRule` in fleet/route.ts); the listings `/api/tags`,
 * `/api/ps` and `/v1/models` answer the union over the routable backends (fleet/union.ts).
 *
 * A tenant with a model list manages and sees only its models (tenants/model-access.ts): a
 * show, create, copy, delete, pull or push naming another is refused with 403 before anything is
 * forwarded, and the listings answer only its models.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Backend, Fleet } from '../fleet/backends';
import { managementRule, routeManagement } from '../fleet/route';
import { BACKENDS_HEADER, gatherListings, mergeListings, UNION_PATHS } from '../fleet/union';
import { loggedPath, type Logger } from '../logger';
import { framingOf } from '../protocol';
import { apiOf, classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from '../proxy/errors';
import { tapResponse } from '../proxy/tap';
import { BodyError, readBody, type BodyLimits } from '../request/body';
import { normalizeModelName } from '../request/model';
import { isModelTransfer } from '../routes';
import { modelRefused } from '../budgets/answer';
import { allowedBy, filterListing, LISTING_PATHS, modelsInBody, namesModelsInBody, retrievedModel } from '../tenants/model-access';
import type { CallIdentity } from '../tenants/registry';
import type { ModelPattern } from '../tenants/rules';

export interface PassThroughDeps {
  fleet: Fleet;
  log: Logger;
  idleTimeoutMs: number;
  clientWriteTimeoutMs: number;
  /** Limits for the small JSON bodies read to route model management by model (several backends). */
  body: BodyLimits;
  /** A tenant's model list (undefined: every model): management and listings keep to it. */
  modelsOf?: (tenant: string) => readonly ModelPattern[] | undefined;
}

/** What the access line says about a request beyond its status. */
interface Access {
  failure?: string;
  backend?: string;
  detail?: string;
  /** Set when the request failed in a way worth an ERROR line: that line's message. */
  failed?: string;
}

/** Forwards `req`; `pinned` is the backend X-Ollama-Backend named (one of the configured). */
export function passThrough(deps: PassThroughDeps, req: http.IncomingMessage, res: http.ServerResponse, pinned?: Backend, identity?: CallIdentity): void {
  const fleet = deps.fleet;
  const startedAt = performance.now();
  const access: Access = {};
  // One line per request, whatever happened: a failure is this line's level and detail, not a
  // line of its own (as LLM calls log them).
  res.once('close', () => {
    const entry = {
      method: req.method,
      path: loggedPath(req),
      status: res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST,
      duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
      backend: access.backend,
      error: access.failure,
      detail: access.detail,
    };
    if (access.failed) deps.log.error(entry, access.failed);
    else deps.log.info(entry, 'request');
  });
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const models = identity && deps.modelsOf?.(identity.tenant);
  if (models) {
    const retrieved = retrievedModel(method, path);
    if (retrieved === false || (retrieved !== undefined && !allowedBy(models, retrieved))) {
      refuseModel(res, access, path, identity.tenant, retrieved || path, models);
      return;
    }
    if (method === 'GET' && LISTING_PATHS.has(path)) {
      filtered(deps, path, pinned, models, res, access).catch((err: unknown) => {
        access.failure = 'internal_error';
        deps.log.error({ path, error: (err as Error)?.message ?? String(err) }, 'answering a filtered listing failed');
        sendJsonError(res, apiOf(path), 502, `the listing of ${path} could not be read`);
      });
      return;
    }
  }
  const checked = models !== undefined && namesModelsInBody(method, path);
  const rule = fleet.routed && !pinned ? managementRule(method, path) : 'first';
  if (!checked && rule !== 'by_model') {
    route(deps, req, res, pinned, access, method, path, rule);
    return;
  }
  // The model is in the body: read it (bounded), then check and route on it, and send it on as read.
  readBody(req, deps.body).then(
    (held) => {
      res.once('close', () => held.release());
      if (checked) {
        const names = modelsInBody(path, held.bytes);
        if (names === undefined) {
          access.failure = 'body_unreadable';
          sendJsonError(res, 'ollama', 400, 'the gateway could not read the request body as Ollama would');
          return;
        }
        const refused = names.find((n) => !allowedBy(models, n));
        if (refused !== undefined) {
          refuseModel(res, access, path, identity!.tenant, refused, models);
          return;
        }
      }
      route(deps, req, res, pinned, access, method, path, rule, held.bytes);
    },
    (err: unknown) => {
      const e = err as BodyError;
      access.failure = err instanceof BodyError ? e.failure : 'aborted';
      if (access.failure === 'aborted') return;
      sendJsonError(res, 'ollama', e.failure === 'too_large' ? 413 : e.failure === 'timeout' ? 408 : 503, e.message, { connection: 'close' });
    },
  );
}

/** Sends a request on to its backend: the pinned one, the only one, a listing union, or by the management rule. */
function route(
  deps: PassThroughDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pinned: Backend | undefined,
  access: Access,
  method: string,
  path: string,
  rule: ReturnType<typeof managementRule>,
  body?: Buffer,
): void {
  const fleet = deps.fleet;
  if (!fleet.routed || pinned) {
    forward(deps, req, res, pinned ?? fleet.backends[0]!, access, body);
    return;
  }
  if (method === 'GET' && UNION_PATHS.has(path)) {
    union(deps, path, res, access).catch((err: unknown) => {
      access.failure = 'internal_error';
      deps.log.error({ path, error: (err as Error)?.message ?? String(err) }, 'answering a listing union failed');
      sendJsonError(res, apiOf(path), 502, `the listings of ${path} could not be merged`);
    });
    return;
  }
  const model = rule === 'by_model' && body ? modelOf(body) : undefined;
  forward(deps, req, res, fleet.get(routeManagement(rule, model, fleet.views())!)!, access, body);
}

/** A model outside the tenant's list: refused in the path's API family, nothing forwarded. */
function refuseModel(res: http.ServerResponse, access: Access, path: string, tenant: string, model: string, models: readonly ModelPattern[]): void {
  const r = modelRefused(
    tenant,
    model,
    models.map((p) => p.text),
  );
  access.failure = 'model_not_allowed';
  sendJsonError(res, apiOf(path), r.status, r.message, r.headers, r.openai);
}

/** A listing with only the tenant's models: from the backend asked, or the union of the routable ones. */
async function filtered(
  deps: PassThroughDeps,
  path: string,
  pinned: Backend | undefined,
  models: readonly ModelPattern[],
  res: http.ServerResponse,
  access: Access,
): Promise<void> {
  const fleet = deps.fleet;
  const backends = pinned ? [pinned] : fleet.routed ? fleet.healthy() : [fleet.backends[0]!];
  await answerListing(deps, path, backends, res, access, models);
}

/**
 * Answers a listing from `backends`: one backend's as it is (without several), else their union;
 * with `models`, only those models.
 */
async function answerListing(
  deps: PassThroughDeps,
  path: string,
  backends: readonly Backend[],
  res: http.ServerResponse,
  access: { failure?: string },
  models?: readonly ModelPattern[],
): Promise<void> {
  const fleet = deps.fleet;
  const answers = await gatherListings(path, backends);
  if (res.destroyed) return;
  if (answers.length === 0) {
    access.failure = 'upstream_unreachable';
    sendJsonError(res, apiOf(path), 502, `no Ollama answered ${path} (${backends.map((b) => b.name).join(', ')})`);
    return;
  }
  const listing = backends.length === 1 && !fleet.routed ? answers[0]!.body : mergeListings(path, answers);
  const body = JSON.stringify(models ? filterListing(path, listing, models) : listing);
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) };
  if (fleet.routed) headers[BACKENDS_HEADER] = answers.map((a) => a.backend).join(', ');
  res.writeHead(200, headers);
  res.end(body);
}

/** The model a management body names (`model`, older clients' `name`, `copy`'s `source`), normalised. */
function modelOf(body: Buffer): string | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const name = [json?.model, json?.name, json?.source].find((v): v is string => typeof v === 'string' && v.trim() !== '');
    return name === undefined ? undefined : normalizeModelName(name);
  } catch {
    return undefined;
  }
}

function union(deps: PassThroughDeps, path: string, res: http.ServerResponse, access: { failure?: string }): Promise<void> {
  return answerListing(deps, path, deps.fleet.healthy(), res, access);
}

function forward(deps: PassThroughDeps, req: http.IncomingMessage, res: http.ServerResponse, backend: Backend, access: Access, body?: Buffer): void {
  const upstream = backend.upstream;
  if (deps.fleet.routed) access.backend = backend.name;
  upstream.send(req, res, {
    body,
    idleTimeoutMs: isModelTransfer(req.method, (req.url ?? '/').split('?')[0] ?? '/') ? 0 : undefined,
    onError: (err, timedOut) => {
      const f = classifyUpstreamError(err, upstream.target.origin, timedOut, deps.idleTimeoutMs);
      access.failure = f.reason;
      access.detail = f.message;
      access.failed = 'request failed upstream';
      sendJsonError(res, apiOf(req.url ?? '/'), f.status, f.message);
    },
    onResponse: (proxyRes) => {
      const framing = framingOf(proxyRes.headers['content-type']);
      tapResponse(proxyRes, res, {
        flushHeaders: framing === 'ndjson' || framing === 'sse',
        clientWriteTimeoutMs: deps.clientWriteTimeoutMs,
        onDone: (end, _summary, _endedAt, error) => {
          if (end !== 'complete') access.failure = end;
          if (error) {
            access.detail = error.message.slice(0, 1024);
            access.failed = 'relaying the response failed';
          }
        },
      });
    },
  });
}
