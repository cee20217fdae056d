/**
 * The probes' clients: a request over node:http that never throws (a crashed gateway is a figure,
 * not an error), and one raw exchange over test/helpers' raw-socket client, timed.
 */
import http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { RawConnection } from '../../test/helpers/raw-client';
import { errText, MiB } from './common';

export interface Resp {
  status?: number;
  headers?: http.IncomingHttpHeaders;
  body: Buffer;
  bytes: number;
  ms: number;
  complete: boolean;
  error?: string;
}

export function httpReq(
  port: number,
  o: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    timeoutMs: number;
    keepBody?: boolean;
    agent?: http.Agent;
    /** Sees the response once it is read here (to pause it, say). */
    onResponse?: (res: http.IncomingMessage) => void;
  },
): Promise<Resp> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const out: Resp = { body: Buffer.alloc(0), bytes: 0, ms: 0, complete: false };
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      out.ms = performance.now() - t0;
      if (error && !out.complete) out.error = error;
      out.body = Buffer.concat(chunks);
      resolve(out);
    };
    const headers: Record<string, string | number> = { ...(o.headers ?? {}) };
    if (o.body !== undefined) {
      headers['content-length'] = Buffer.byteLength(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers, agent: o.agent ?? false });
    const timer = setTimeout(() => {
      finish('timeout');
      req.destroy();
    }, o.timeoutMs);
    req.on('response', (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      res.on('data', (c: Buffer) => {
        out.bytes += c.length;
        if (o.keepBody !== false && out.bytes <= 4 * MiB) chunks.push(c);
      });
      res.on('end', () => {
        out.complete = true;
        finish();
      });
      res.on('aborted', () => finish('aborted'));
      res.on('error', (e) => finish(errText(e)));
      res.on('close', () => finish(out.complete ? undefined : 'closed before the end'));
      o.onResponse?.(res);
    });
    req.on('error', (e) => finish(errText(e)));
    req.end(o.body);
  });
}

/** The first response of a raw exchange: its status (-1: bytes that are not HTTP) and headers. */
export interface Parsed {
  status: number;
  headers: Record<string, string>;
}

export interface RawResult {
  parsed?: Parsed;
  /** ms from the write to a complete response. */
  responseMs?: number;
  /** ms from the write to the server closing the connection. */
  closedMs?: number;
  closed: boolean;
  error?: string;
}

/** The first response on `conn` once complete (or, after the close, as far as it came); -1 for a head that is not HTTP. */
export function firstResponse(conn: RawConnection): Parsed | undefined {
  const [res] = conn.responses();
  if (res) return { status: res.status, headers: res.headers };
  const data = conn.received;
  if (data.indexOf('\r\n\r\n') !== -1 && !/^HTTP\/\d\.\d \d{3}/.test(data.toString('latin1', 0, 16))) return { status: -1, headers: {} };
  return undefined;
}

/**
 * Writes `payload` on a fresh connection and reads the answer. Resolves when the response is
 * complete (or, with `waitClose`, once the server also closed the connection), on close, or after
 * `timeoutMs`.
 */
export async function rawExchange(
  port: number,
  payload: string | Buffer,
  o: { timeoutMs: number; waitClose?: boolean; onData?: (sock: net.Socket, data: Buffer) => void },
): Promise<RawResult> {
  const t0 = performance.now();
  const res: RawResult = { closed: false };
  let conn: RawConnection;
  try {
    conn = await RawConnection.open(port, o.timeoutMs);
  } catch (e) {
    return { ...res, closed: true, closedMs: performance.now() - t0, error: errText(e) };
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (conn.error) res.error ??= errText(conn.error);
      conn.destroy();
      resolve(res);
    };
    const timer = setTimeout(finish, Math.max(0, o.timeoutMs - (performance.now() - t0)));
    conn.socket.on('data', (c: Buffer) => {
      o.onData?.(conn.socket, c);
      if (res.responseMs !== undefined) return;
      res.parsed = firstResponse(conn);
      if (res.parsed) {
        res.responseMs = performance.now() - t0;
        if (!o.waitClose) finish();
      }
    });
    void conn.whenClosed.then(() => {
      res.closed = true;
      res.closedMs = (conn.closedAt ?? performance.now()) - t0;
      if (res.responseMs === undefined) res.parsed = firstResponse(conn);
      finish();
    });
    void conn.send(payload);
  });
}
