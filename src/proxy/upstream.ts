/**
 * The connection to Ollama: one http-proxy server over a keep-alive agent, shared by every request.
 *
 * Every proxied request goes through `send`. It strips hop-by-hop headers, sends Ollama's own
 * `Host` (an Ollama on loopback answers a foreign Host with 403), arms the idle timeout, and aborts
 * the upstream request the moment the client goes away before an answer, so Ollama stops
 * generating (once the answer streams, the tap does that). Every response
 * is handed to the caller's `onResponse`, which relays it through the tap (instrumented calls and
 * pass-through alike); every failure before a response, to `onError`, exactly once.
 */
import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type HttpProxy from 'http-proxy';
import type { UpstreamTarget } from '../config';
import { watchClientGone } from './client-gone';
import { classifyUpstreamError } from './errors';
import { startUpstreamSpan, type EndUpstreamSpan } from '../../otel/upstream-span';
import { httpProxy } from './http-proxy';
import { nestsDeeperThan } from '../protocol/bytes';

/** Request headers that describe one hop only and must not be forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP_REQUEST = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  // The gateway's own server already answered `100 Continue`; the body is on its way.
  'expect',
];

export interface SendOptions {
  /** The body to send instead of streaming the client's (instrumented calls read it first). */
  body?: Buffer;
  /** Ollama's longest silence for this call, instead of UPSTREAM_IDLE_TIMEOUT_SECONDS; 0 for none. */
  idleTimeoutMs?: number;
  /**
   * Ask for the response uncompressed (`Accept-Encoding: identity`): the gateway reads what it
   * relays, and Ollama itself never compresses, so the client gets what Ollama would send it.
   */
  identity?: boolean;
  /** Takes over the response once its head has arrived. */
  onResponse: (proxyRes: IncomingMessage) => void;
  /**
   * The upstream request failed before any response arrived: refused, reset, timed out, or answered
   * with something that is not a response the gateway can relay. Not called when the client left,
   * nor for anything after `onResponse` (the response's reader owns that). `sent`: the whole
   * request had been written to Ollama, which may have acted on it (a call must not run twice).
   */
  onError: (err: NodeJS.ErrnoException, timedOut: boolean, sent: boolean) => void;
}

interface Exchange {
  opts: SendOptions;
  timedOut: boolean;
  /** Set once a response head arrived or a failure was reported: nothing more is reported. */
  settled: boolean;
  /** The upstream request of the current attempt. */
  current?: ClientRequest;
  /** Whether that attempt went out on a kept-alive connection. */
  reused: boolean;
  /** Whether that attempt's request was written whole (Ollama may have received it and acted on it). */
  sent: boolean;
  /** Whether the call was already sent again once. */
  retried: boolean;
  /** Ends the client span of the request to Ollama, when tracing is on. */
  endSpan?: EndUpstreamSpan;
  /** Stops watching for the client going away (the response's reader watches from then on). */
  unwatchClient?: () => void;
}

/** Largest JSON document the gateway's own GETs (polls, readiness, listings) read from Ollama. */
const MAX_JSON_BYTES = 16 * 2 ** 20;

/**
 * Deepest nesting of arrays and objects the gateway's own GETs accept. Ollama's documents nest a
 * few levels (`/api/show`'s `model_info` the most); a deeper one is refused before it is parsed, so
 * nothing a backend sends reaches a serializer or a recursion with a depth it chose.
 */
const MAX_JSON_DEPTH = 64;

/** What a connection Ollama closed while idle gives when the gateway reuses it at that moment. */
const STALE_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

const EXCHANGE = Symbol('ollama-gateway.exchange');
type TrackedRequest = IncomingMessage & { [EXCHANGE]?: Exchange };
const IDLE_CUT = Symbol('ollama-gateway.idle-cut');
const IDLE_MS = Symbol('ollama-gateway.idle-ms');
type UpstreamRequest = ClientRequest & { [IDLE_CUT]?: boolean; [IDLE_MS]?: number };

const requestOf = (proxyRes: IncomingMessage): UpstreamRequest | undefined => (proxyRes as IncomingMessage & { req?: UpstreamRequest }).req;

/** Whether the upstream request behind `proxyRes` was cut by the gateway's idle timer. */
export function cutByIdleTimer(proxyRes: IncomingMessage): boolean {
  return requestOf(proxyRes)?.[IDLE_CUT] === true;
}

/**
 * Stops and restarts the idle timer of the upstream request behind `proxyRes`. The idle timeout
 * measures Ollama's silence while the gateway is ready to read; while the gateway has paused the
 * response because its client is not reading, Ollama's silence is the client's doing.
 */
export function suspendIdleTimer(proxyRes: IncomingMessage): void {
  requestOf(proxyRes)?.setTimeout(0);
}

/** The idle timeout (ms) the upstream request behind `proxyRes` runs with; 0 for none. */
export function idleTimeoutOf(proxyRes: IncomingMessage): number {
  return requestOf(proxyRes)?.[IDLE_MS] ?? 0;
}

/** Cuts the upstream request behind `proxyRes` as its idle timer does (recorded as a timeout). */
export function cutForSilence(proxyRes: IncomingMessage): void {
  const req = requestOf(proxyRes);
  if (!req || req.destroyed) return;
  req[IDLE_CUT] = true;
  req.destroy();
}

export function resumeIdleTimer(proxyRes: IncomingMessage): void {
  const req = requestOf(proxyRes);
  const ms = req?.[IDLE_MS];
  if (req && ms !== undefined && !req.destroyed) req.setTimeout(ms);
}

/** An upstream answer the gateway cannot relay for this request (e.g. `101` to a POST); the message completes "Ollama at <origin> …". */
export class InvalidResponseError extends Error {
  override name = 'InvalidResponseError';
  readonly code = 'ERR_UPSTREAM_INVALID_RESPONSE';
}

/**
 * Ollama's response head did not complete within the call's idle timeout. The idle timer alone
 * never fires for a head that keeps arriving (`103 Early Hints` every few hundred ms, or a status
 * line and headers a byte at a time); Ollama itself sends nothing before its head, so a head is
 * held to the same number of seconds, counted from the request.
 */
export class HeadTimeoutError extends Error {
  override name = 'HeadTimeoutError';
  readonly code = 'ERR_UPSTREAM_HEAD_TIMEOUT';
}

/** A `buffer` source for http-proxy that writes an in-memory body in one piece. */
function bodySource(body: Buffer): HttpProxy.ServerOptions['buffer'] {
  return {
    pipe<T extends NodeJS.WritableStream>(dest: T): T {
      dest.end(body);
      return dest;
    },
  } as unknown as HttpProxy.ServerOptions['buffer'];
}

/**
 * Headers a client may name in `Connection` that still must not be dropped: they frame the body
 * (without them Node would send the body unframed, and Ollama would read it as a second, smuggled
 * request on the shared connection) or route the request.
 */
const NEVER_HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'host']);

function stripHopByHop(headers: http.IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (connection) {
    for (const token of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !NEVER_HOP_BY_HOP.has(name)) delete headers[name];
    }
  }
  for (const name of HOP_BY_HOP_REQUEST) delete headers[name];
}

export class Upstream {
  readonly agent: http.Agent;
  private readonly proxy: HttpProxy;

  /** This gateway's entry in `Via` (`1.1 <pseudonym>`). */
  readonly via: string;

  constructor(
    readonly target: UpstreamTarget,
    private readonly idleTimeoutMs: number,
    /** A name for this gateway process, unique enough to recognise its own requests. */
    pseudonym: string,
  ) {
    this.via = `1.1 ${pseudonym}`;
    const agentOptions: http.AgentOptions = { keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' };
    this.agent = target.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.proxy = httpProxy.createProxyServer({
      target: (target.socketPath
        ? { protocol: 'http:', socketPath: target.socketPath, path: target.pathPrefix }
        : { protocol: target.protocol, host: target.hostname, port: target.port, path: target.pathPrefix }) as unknown as HttpProxy.ProxyTargetUrl,
      agent: this.agent,
      // Ollama's own Host (an Ollama on loopback answers a foreign Host with 403); over a Unix
      // socket `send` sets it.
      changeOrigin: !target.socketPath,
      xfwd: false,
      ws: false,
      // Every response is relayed by the gateway's own tap, never by http-proxy's header passes.
      selfHandleResponse: true,
      // The request target goes out exactly as the dispatcher normalised and routed on it: without
      // this, http-proxy re-parses it with url.parse, which turns `\` into `/` (`/api\chat` would
      // reach Ollama as `/api/chat` without having been routed as one).
      toProxy: true,
    });
    this.proxy.on('proxyReq', (proxyReq, req, res) => this.onProxyReq(proxyReq as UpstreamRequest, req as TrackedRequest, res as ServerResponse));
    this.proxy.on('proxyRes', (proxyRes, req) => this.onProxyRes(proxyRes, req as TrackedRequest));
    // http-proxy's default is to rethrow; every call below passes its own callback, so this only
    // guards against a path that does not.
    this.proxy.on('error', () => {});
  }

  /** Sends `req` to Ollama. Headers of `req` are edited in place; `req.url` is sent as it is. */
  send(req: IncomingMessage, res: ServerResponse, opts: SendOptions): void {
    const tracked = req as TrackedRequest;
    const ex: Exchange = { opts, timedOut: false, settled: false, reused: false, sent: false, retried: false };
    tracked[EXCHANGE] = ex;
    const headers = req.headers;
    stripHopByHop(headers);
    if (opts.body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = String(opts.body.length);
    }
    if (opts.identity) headers['accept-encoding'] = 'identity';
    // Marks the hop (RFC 9110 §7.6.3), so a request that comes back here is seen as a loop.
    const via = headers.via;
    const prior = via === undefined ? '' : Array.isArray(via) ? via.join(', ') : via;
    // A call sent to a second backend (failover) carries the entry once.
    if (!prior.endsWith(this.via)) headers.via = prior ? `${prior}, ${this.via}` : this.via;
    if (this.target.socketPath) headers.host = this.target.hostname;
    ex.endSpan = startUpstreamSpan(
      req.method ?? 'GET',
      this.target.hostname,
      this.target.port,
      this.target.origin + this.target.pathPrefix + (req.url ?? ''),
      headers,
    );
    // A call can be sent again only when its body is in hand, or it has none.
    const replayable = opts.body !== undefined || (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined);
    // Once the request was written whole, Ollama may be running it: only a request that changes
    // nothing may go again (RFC 9110 §9.2.2); a call that generates is never run twice.
    const idempotent = req.method === 'GET' || req.method === 'HEAD';
    const attempt = (): void =>
      this.proxy.web(req, res, opts.body ? { buffer: bodySource(opts.body) } : {}, (err) => {
        // The client left or sent a broken body (the caller learns it from `res`), or the response
        // already started (a reset mid-body is the response reader's to report, with the status
        // the client got).
        if (req.errored) res.destroy();
        if (res.destroyed || ex.settled) return;
        const e = err as NodeJS.ErrnoException;
        // Ollama closed a kept-alive connection just as the gateway reused it: nothing of the
        // response came, so the request goes again, once, on a fresh connection, unless it was
        // written whole and is not idempotent (a backend that crashed mid-generation would run
        // it again).
        if (
          ex.reused &&
          !ex.retried &&
          !ex.timedOut &&
          replayable &&
          (!ex.sent || idempotent) &&
          (STALE_SOCKET_ERRORS.has(e.code ?? '') || e.message === 'socket hang up')
        ) {
          ex.retried = true;
          attempt();
          return;
        }
        this.fail(ex, e);
      });
    attempt();
  }

  private fail(ex: Exchange, err: NodeJS.ErrnoException): void {
    if (ex.settled) return;
    ex.settled = true;
    ex.endSpan?.(undefined, err);
    ex.opts.onError(err, ex.timedOut, ex.sent);
  }

  private onProxyReq(proxyReq: UpstreamRequest, req: TrackedRequest, res: ServerResponse): void {
    const ex = req[EXCHANGE];
    if (!ex) return;
    ex.current = proxyReq;
    ex.reused = proxyReq.reusedSocket;
    ex.sent = false;
    proxyReq.once('finish', () => {
      if (ex.current === proxyReq) ex.sent = true;
    });
    // Idle timeout: the socket timer restarts on every byte, so a long generation that keeps
    // streaming is never cut; only silence is.
    const idleMs = ex.opts.idleTimeoutMs ?? this.idleTimeoutMs;
    if (idleMs > 0) {
      proxyReq[IDLE_MS] = idleMs;
      proxyReq.setTimeout(idleMs, () => {
        ex.timedOut = true;
        proxyReq[IDLE_CUT] = true;
        proxyReq.destroy();
      });
      // Bytes the connection had read before this request: a reused one has read earlier answers.
      // (http-proxy emits `proxyReq` once the request has its socket.)
      const readBefore = proxyReq.socket?.bytesRead ?? 0;
      const headDeadline = setTimeout(() => {
        // Nothing at all came: that is plain silence, reported as the idle timeout is.
        if ((proxyReq.socket?.bytesRead ?? 0) - readBefore === 0) ex.timedOut = true;
        proxyReq.destroy(
          ex.timedOut ? undefined : new HeadTimeoutError(`did not complete its response head within ${idleMs / 1000} s (UPSTREAM_IDLE_TIMEOUT_SECONDS)`),
        );
      }, idleMs);
      headDeadline.unref();
      const stop = () => clearTimeout(headDeadline);
      proxyReq.once('response', stop);
      proxyReq.once('close', stop);
    }
    // An answer Node cannot hand over as a response (a `101` to a request that asked for no
    // upgrade) closes the request with neither a response nor an error: report it, or the client
    // would wait for ever.
    proxyReq.once('upgrade', (_res, socket) => {
      socket.destroy();
      this.fail(ex, new InvalidResponseError('answered 101 Switching Protocols to a request that asked for no upgrade'));
    });
    proxyReq.once('close', () => {
      // An attempt sent again (stale connection) is not this one's to report.
      setImmediate(() => {
        if (ex.current === proxyReq && !ex.settled && !res.destroyed) this.fail(ex, new InvalidResponseError('closed the connection without a valid response'));
      });
    });
    // The client left before the answer: Ollama stops generating. Once the answer's head has
    // arrived, its reader (the tap) decides: a client that leaves after the final event leaves a
    // complete call, whose connection to Ollama is let to finish.
    const unwatch = watchClientGone(req, res, () => {
      if (!proxyReq.destroyed) proxyReq.destroy();
    });
    ex.unwatchClient = unwatch;
    proxyReq.once('close', unwatch);
  }

  private onProxyRes(proxyRes: IncomingMessage, req: TrackedRequest): void {
    const ex = req[EXCHANGE];
    if (!ex || ex.settled) {
      proxyRes.destroy();
      return;
    }
    ex.settled = true;
    ex.unwatchClient?.();
    proxyRes.on('error', () => {});
    const endSpan = ex.endSpan;
    if (endSpan) proxyRes.once('close', () => endSpan(proxyRes.statusCode, proxyRes.complete ? undefined : new Error('the response broke off')));
    ex.opts.onResponse(proxyRes);
  }

  /**
   * GET a small JSON document from Ollama (the start-up check, /readyz). These are the gateway's own
   * probes, not users' calls, so they are kept out of traces.
   */
  getJson(path: string, timeoutMs: number): Promise<unknown> {
    return context
      .with(suppressTracing(context.active()), () => this.fetchJson(path, timeoutMs))
      .catch((err: NodeJS.ErrnoException) => {
        // The code stays on the error: the start-up line turns it into the likely fix.
        throw err.code ? Object.assign(new Error(classifyUpstreamError(err, this.target.origin, false, 0).message), { code: err.code }) : err;
      });
  }

  private fetchJson(path: string, timeoutMs: number): Promise<unknown> {
    const t = this.target;
    const mod = t.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      // The whole answer within `timeoutMs`, and no more than MAX_JSON_BYTES of it: a backend that
      // trickles or sends an endless listing is cut, not waited for or held.
      const fail = (err: Error) => {
        clearTimeout(deadline);
        req.destroy();
        reject(err);
      };
      const req = mod.request(
        {
          ...(t.socketPath ? { socketPath: t.socketPath } : { protocol: t.protocol, hostname: t.hostname, port: t.port }),
          path: t.pathPrefix + path,
          method: 'GET',
          agent: this.agent,
          headers: { accept: 'application/json' },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            if (bytes > MAX_JSON_BYTES) fail(new Error(`Ollama at ${t.origin} answered ${path} with more than ${MAX_JSON_BYTES / 2 ** 20} MiB`));
            else chunks.push(c);
          });
          res.on('error', (err) => fail(err));
          res.on('end', () => {
            clearTimeout(deadline);
            if ((res.statusCode ?? 0) >= 400) {
              reject(new Error(`Ollama at ${t.origin} answered ${path} with HTTP ${res.statusCode}`));
              return;
            }
            const text = Buffer.concat(chunks);
            if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
              reject(new Error(`Ollama at ${t.origin} answered ${path} with JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
              return;
            }
            try {
              resolve(JSON.parse(text.toString('utf8')));
            } catch {
              reject(new Error(`Ollama at ${t.origin} answered ${path} with a body that is not JSON`));
            }
          });
        },
      );
      const late = () => fail(new Error(`Ollama at ${t.origin} did not answer ${path} within ${timeoutMs} ms`));
      const deadline = setTimeout(late, timeoutMs);
      req.on('timeout', late);
      req.on('error', (err) => fail(err));
      req.end();
    });
  }

  close(): void {
    this.proxy.close();
    this.agent.destroy();
  }
}
