/**
 * The connection to Ollama: one http-proxy server over a keep-alive agent, shared by every request.
 *
 * Every proxied request goes through `send`. It strips hop-by-hop headers, sends Ollama's own
 * `Host` (an Ollama on loopback answers a foreign Host with 403), arms the idle timeout, and aborts
 * the upstream request the moment the client goes away, so Ollama stops generating. Responses are
 * either piped by http-proxy unchanged (pass-through) or handed to the caller's `onResponse`
 * (instrumented calls, which tap them).
 */
import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import httpProxy from 'http-proxy';
import type { UpstreamTarget } from '../config';
import { classifyUpstreamError } from './errors';

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
  /** Takes over the response; without it the response is piped to the client unchanged. */
  onResponse?: (proxyRes: IncomingMessage) => void;
  /** The upstream request failed before a response arrived (not called when the client left). */
  onError: (err: NodeJS.ErrnoException, timedOut: boolean) => void;
}

interface Exchange {
  opts: SendOptions;
  timedOut: boolean;
}

const EXCHANGE = Symbol('ollama-gateway.exchange');
type TrackedRequest = IncomingMessage & { [EXCHANGE]?: Exchange };
const IDLE_CUT = Symbol('ollama-gateway.idle-cut');
type CuttableRequest = ClientRequest & { [IDLE_CUT]?: boolean };

/** Whether the upstream request behind `proxyRes` was cut by the gateway's idle timer. */
export function cutByIdleTimer(proxyRes: IncomingMessage): boolean {
  const req = (proxyRes as IncomingMessage & { req?: CuttableRequest }).req;
  return req?.[IDLE_CUT] === true;
}

/** A `buffer` source for http-proxy that writes an in-memory body in one piece. */
function bodySource(body: Buffer): httpProxy.ServerOptions['buffer'] {
  return {
    pipe<T extends NodeJS.WritableStream>(dest: T): T {
      dest.end(body);
      return dest;
    },
  } as unknown as httpProxy.ServerOptions['buffer'];
}

function stripHopByHop(headers: http.IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (connection) {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name) delete headers[name];
    }
  }
  for (const name of HOP_BY_HOP_REQUEST) delete headers[name];
}

export class Upstream {
  readonly agent: http.Agent;
  private readonly proxy: httpProxy;

  constructor(
    readonly target: UpstreamTarget,
    private readonly idleTimeoutMs: number,
  ) {
    const agentOptions: http.AgentOptions = { keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' };
    this.agent = target.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.proxy = httpProxy.createProxyServer({
      target: { protocol: target.protocol, host: target.hostname, port: target.port } as unknown as httpProxy.ProxyTargetUrl,
      agent: this.agent,
      changeOrigin: true,
      xfwd: false,
      ws: false,
    });
    this.proxy.on('proxyReq', (proxyReq, req, res) => this.onProxyReq(proxyReq, req as TrackedRequest, res as ServerResponse));
    this.proxy.on('proxyRes', (proxyRes, req, res) => this.onProxyRes(proxyRes, req as TrackedRequest, res as ServerResponse));
    // http-proxy's default is to rethrow; every call below passes its own callback, so this only
    // guards against a path that does not.
    this.proxy.on('error', () => {});
  }

  /** Sends `req` to Ollama. Headers of `req` are edited in place. */
  send(req: IncomingMessage, res: ServerResponse, opts: SendOptions): void {
    const tracked = req as TrackedRequest;
    tracked[EXCHANGE] = { opts, timedOut: false };
    const headers = req.headers;
    stripHopByHop(headers);
    if (opts.body) {
      delete headers['transfer-encoding'];
      headers['content-length'] = String(opts.body.length);
    }
    this.proxy.web(
      req,
      res,
      opts.body ? { buffer: bodySource(opts.body), selfHandleResponse: !!opts.onResponse } : { selfHandleResponse: !!opts.onResponse },
      (err) => {
        const ex = tracked[EXCHANGE];
        if (!ex || res.destroyed) return; // the client left; the caller learns it from `res`
        ex.opts.onError(err as NodeJS.ErrnoException, ex.timedOut);
      },
    );
  }

  private onProxyReq(proxyReq: ClientRequest, req: TrackedRequest, res: ServerResponse): void {
    const ex = req[EXCHANGE];
    if (!ex) return;
    // Idle timeout: the socket timer restarts on every byte, so a long generation that keeps
    // streaming is never cut; only silence is.
    proxyReq.setTimeout(this.idleTimeoutMs, () => {
      ex.timedOut = true;
      (proxyReq as CuttableRequest)[IDLE_CUT] = true;
      proxyReq.destroy();
    });
    const abortUpstream = () => {
      if (!proxyReq.destroyed) proxyReq.destroy();
    };
    if (res.destroyed || res.closed) abortUpstream();
    else
      res.once('close', () => {
        if (!res.writableFinished) abortUpstream();
      });
  }

  private onProxyRes(proxyRes: IncomingMessage, req: TrackedRequest, res: ServerResponse): void {
    const ex = req[EXCHANGE];
    if (ex?.opts.onResponse) {
      ex.opts.onResponse(proxyRes);
      return;
    }
    // Pass-through: http-proxy pipes the body, but a pipe does not end the client's response when
    // Ollama's breaks off; cut the client's too, so it sees the truncation instead of hanging.
    proxyRes.on('error', () => {});
    proxyRes.once('close', () => {
      if (!proxyRes.complete && !res.destroyed) res.destroy();
    });
  }

  /**
   * GET a small JSON document from Ollama (the start-up check, /readyz). These are the gateway's own
   * probes, not users' calls, so they are kept out of traces.
   */
  getJson(path: string, timeoutMs: number): Promise<unknown> {
    return context.with(suppressTracing(context.active()), () => this.fetchJson(path, timeoutMs)).catch((err: NodeJS.ErrnoException) => {
      throw err.code ? new Error(classifyUpstreamError(err, this.target.origin, false, 0).message) : err;
    });
  }

  private fetchJson(path: string, timeoutMs: number): Promise<unknown> {
    const t = this.target;
    const mod = t.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        {
          protocol: t.protocol,
          hostname: t.hostname,
          port: t.port,
          path,
          method: 'GET',
          agent: this.agent,
          headers: { accept: 'application/json' },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 400) {
              reject(new Error(`Ollama at ${t.origin} answered ${path} with HTTP ${res.statusCode}`));
              return;
            }
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
            } catch {
              reject(new Error(`Ollama at ${t.origin} answered ${path} with a body that is not JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Ollama at ${t.origin} did not answer ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.proxy.close();
    this.agent.destroy();
  }
}
