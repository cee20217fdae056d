/**
 * Before/after figures for the "hostile input" issue: runs one gateway build as a child process
 * against hostile clients and upstreams and prints a markdown table of what it measured.
 *
 *   node dist/bench/hostile-figures.js --gateway <some dist>/src/main.js [--only 1,3,8]
 *
 * The fake Ollama is this build's `test/helpers/fake-ollama`, run in this process; probes that need
 * an upstream the fake cannot imitate (a `Trailer:` header, a `101`, one 30 MB SSE event written
 * in 64 KB pieces) use a small `node:net` server instead. Each probe starts a fresh gateway (so its
 * counters start at zero and one probe's crash cannot spoil the next), is bounded in time, and
 * reports a crash as `crashed` rather than failing. Settings the older build does not know
 * (REQUEST_BODY_TIMEOUT_SECONDS, …) are ignored by it. Everything listens on 127.0.0.1.
 *
 * Progress goes to stderr; the table to stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeOllama } from '../test/helpers/fake-ollama';
import { fixture } from '../test/helpers/fixtures';
import { freePort, rssBytes, waitForPort } from './procs';

// ---------------------------------------------------------------------------------------------
// Small utilities

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MB`;
const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const progress = (msg: string) => process.stderr.write(`[hostile-figures] ${msg}\n`);

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code ?? err?.message ?? String(e);
}

/** Peak resident memory (VmHWM) of `pid`, in bytes. */
function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A stderr line that is part of a stack trace: a frame, or an error header. */
function isStackLine(line: string): boolean {
  return /^\s+at\s+\S/.test(line) || /^(\w*Error|Uncaught\b|node:internal\/)/.test(line.trim()) || /^\S+\.js:\d+$/.test(line.trim());
}

// ---------------------------------------------------------------------------------------------
// The gateway under test, as a child process

interface Gw {
  child: ChildProcess;
  port: number;
  /** stdout lines kept (each cut to 2,000 characters). */
  lines: string[];
  /** stdout lines that are not JSON. */
  nonJson: number;
  /** stderr, its first 2 MB. */
  stderr: string;
  exited: boolean;
  exitInfo: string;
  exit: Promise<void>;
}

let gatewayMain = '';

const BASE_ENV: Record<string, string> = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'INFO',
  OLLAMA_POLL_INTERVAL_SECONDS: '0',
  // The new build's settings (the old one ignores them).
  REQUEST_BODY_TIMEOUT_SECONDS: '5',
  HEADERS_TIMEOUT_SECONDS: '10',
  CLIENT_WRITE_TIMEOUT_SECONDS: '30',
  SHUTDOWN_GRACE_SECONDS: '1',
};

async function startGw(upstream: string, extra: Record<string, string> = {}): Promise<Gw> {
  const port = await freePort();
  const child = spawn(process.execPath, [gatewayMain], {
    env: { PATH: process.env.PATH ?? '', ...BASE_ENV, OLLAMA_HOST: upstream, PORT: String(port), ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let resolveExit!: () => void;
  const gw: Gw = { child, port, lines: [], nonJson: 0, stderr: '', exited: false, exitInfo: '', exit: new Promise((r) => (resolveExit = r)) };
  child.once('exit', (code, signal) => {
    gw.exited = true;
    gw.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
    resolveExit();
  });
  // stdout: split on newlines without rescanning what was already searched (lines can be MBs long).
  let pending: Buffer[] = [];
  const takeLine = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text === '') return;
    try {
      JSON.parse(text);
    } catch {
      gw.nonJson++;
    }
    if (gw.lines.length < 20_000) gw.lines.push(text.length > 2000 ? text.slice(0, 2000) : text);
  };
  child.stdout!.on('data', (c: Buffer) => {
    let start = 0;
    let nl = c.indexOf(10, start);
    while (nl !== -1) {
      pending.push(c.subarray(start, nl));
      takeLine(Buffer.concat(pending));
      pending = [];
      start = nl + 1;
      nl = c.indexOf(10, start);
    }
    if (start < c.length) pending.push(c.subarray(start));
  });
  child.stderr!.on('data', (c: Buffer) => {
    if (gw.stderr.length < 2 * MiB) gw.stderr += c.toString('utf8');
  });
  const failed = gw.exit.then(() => {
    throw new Error(`gateway exited at start (${gw.exitInfo}): ${gw.stderr.slice(0, 500)}`);
  });
  await Promise.race([waitForPort(port, 15_000), failed]);
  failed.catch(() => undefined);
  return gw;
}

async function stopGw(gw: Gw): Promise<void> {
  if (gw.exited) return;
  gw.child.kill('SIGKILL');
  await Promise.race([gw.exit, sleep(5000)]);
}

function rssOf(gw: Gw): string {
  if (gw.exited) return 'crashed';
  try {
    return mb(rssBytes(gw.child.pid!));
  } catch {
    return 'crashed';
  }
}

function crashText(gw: Gw): string {
  const lines = gw.stderr.split('\n').map((l) => l.trim());
  // The error's own line (`RangeError: …`, `Error [ERR_…]: …`) rather than the source line quoted above it.
  const first = lines.find((l) => /^\w*Error\b/.test(l)) ?? lines.find((l) => /Error|ERR_/.test(l));
  return `crashed (${gw.exitInfo}${first ? `: ${first.slice(0, 120)}` : ''})`;
}

function statusOf(gw: Gw): string {
  return gw.exited ? crashText(gw) : 'alive';
}

async function alive(gw: Gw): Promise<boolean> {
  if (gw.exited) return false;
  const r = await httpReq(gw.port, { path: '/healthz', timeoutMs: 3000 });
  return r.status === 200 && !gw.exited;
}

// ---------------------------------------------------------------------------------------------
// HTTP clients

interface Resp {
  status?: number;
  headers?: http.IncomingHttpHeaders;
  body: Buffer;
  bytes: number;
  ms: number;
  complete: boolean;
  error?: string;
}

function httpReq(
  port: number,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs: number; keepBody?: boolean; agent?: http.Agent },
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
    });
    req.on('error', (e) => finish(errText(e)));
    req.end(o.body);
  });
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  complete: boolean;
  bodyBytes: number;
}

/** Parses the response(s) in `buf` (skipping 1xx other than 101); undefined until a head is in. */
function parseResponse(buf: Buffer): Parsed | undefined {
  let off = 0;
  for (let guard = 0; guard < 20; guard++) {
    const he = buf.indexOf('\r\n\r\n', off);
    if (he < 0) return undefined;
    const head = buf.subarray(off, he).toString('latin1').split('\r\n');
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(head[0]);
    if (!m) return { status: -1, headers: {}, complete: true, bodyBytes: 0 };
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const h of head.slice(1)) {
      const i = h.indexOf(':');
      if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const bodyStart = he + 4;
    if (status >= 100 && status < 200 && status !== 101) {
      off = bodyStart;
      continue;
    }
    if (status === 101 || status === 204 || status === 304) return { status, headers, complete: true, bodyBytes: 0 };
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let p = bodyStart;
      let bytes = 0;
      for (let g = 0; g < 1_000_000; g++) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) return { status, headers, complete: false, bodyBytes: bytes };
        const size = parseInt(buf.subarray(p, le).toString('latin1').split(';')[0], 16);
        if (Number.isNaN(size)) return { status, headers, complete: true, bodyBytes: bytes };
        if (size === 0) {
          const complete = buf.subarray(le + 2, le + 4).toString('latin1') === '\r\n' || buf.indexOf('\r\n\r\n', le + 2) >= 0;
          return { status, headers, complete, bodyBytes: bytes };
        }
        p = le + 2 + size + 2;
        if (p > buf.length) return { status, headers, complete: false, bodyBytes: bytes + Math.max(0, buf.length - le - 2) };
        bytes += size;
      }
      return { status, headers, complete: false, bodyBytes: bytes };
    }
    const cl = headers['content-length'];
    if (cl !== undefined) return { status, headers, complete: buf.length - bodyStart >= Number(cl), bodyBytes: buf.length - bodyStart };
    return { status, headers, complete: false, bodyBytes: buf.length - bodyStart };
  }
  return undefined;
}

interface RawResult {
  parsed?: Parsed;
  /** ms from the write to a complete response. */
  responseMs?: number;
  /** ms from the write to the server closing the connection. */
  closedMs?: number;
  closed: boolean;
  error?: string;
  data: Buffer;
}

/**
 * Writes `payload` on a fresh connection and reads the answer. Resolves when the response is
 * complete (or, with `waitClose`, once the server also closed the connection), on close, or after
 * `timeoutMs`.
 */
function rawExchange(
  port: number,
  payload: string | Buffer,
  o: { timeoutMs: number; waitClose?: boolean; onData?: (sock: net.Socket, data: Buffer) => void },
): Promise<RawResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const res: RawResult = { closed: false, data: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const sock = net.connect(port, '127.0.0.1');
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      res.data = Buffer.concat(chunks);
      sock.destroy();
      resolve(res);
    };
    const timer = setTimeout(finish, o.timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (c: Buffer) => {
      if (size < 8 * MiB) chunks.push(c);
      size += c.length;
      o.onData?.(sock, c);
      if (res.responseMs === undefined) {
        res.parsed = parseResponse(Buffer.concat(chunks));
        if (res.parsed?.complete) {
          res.responseMs = performance.now() - t0;
          if (!o.waitClose) finish();
        }
      }
    });
    sock.on('error', (e) => (res.error ??= errText(e)));
    sock.on('close', () => {
      res.closed = true;
      res.closedMs = performance.now() - t0;
      if (res.responseMs === undefined) res.parsed = parseResponse(Buffer.concat(chunks));
      finish();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Metrics

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(gw: Gw): Promise<Sample[] | undefined> {
  const r = await httpReq(gw.port, { path: '/metrics', timeoutMs: 20_000 });
  if (r.status !== 200 || r.bytes > 4 * MiB) return undefined;
  const out: Sample[] = [];
  for (const line of r.body.toString('utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sum(samples: Sample[] | undefined, name: string, where: Record<string, string> = {}): number {
  if (!samples) return NaN;
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Per value of `label`, how much `name` grew between two scrapes (e.g. `200×1`). */
function grew(before: Sample[] | undefined, after: Sample[] | undefined, name: string, label: string, where: Record<string, string> = {}): string {
  if (!after) return 'metrics unavailable';
  const values = new Set(after.filter((s) => s.name === name).map((s) => s.labels[label]));
  const parts: string[] = [];
  for (const v of values) {
    const d = sum(after, name, { ...where, [label]: v }) - (before ? sum(before, name, { ...where, [label]: v }) : 0);
    if (d > 0) parts.push(`${label}=${v} ×${d}`);
  }
  return parts.length ? parts.join(', ') : 'nothing';
}

// ---------------------------------------------------------------------------------------------
// Tiny upstreams written with node:net (for what the fake cannot send)

interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** What a tiny upstream does with a request: answer and keep reading, or take the socket over. */
type TinyHandler = (req: RawRequest, sock: net.Socket) => 'continue' | 'stop';

class TinyUpstream {
  readonly server: net.Server;
  port = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(handler: TinyHandler) {
    this.server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      let stopped = false;
      sock.on('data', (c: Buffer) => {
        if (stopped) return;
        buf = Buffer.concat([buf, c]);
        for (let guard = 0; guard < 100 && !stopped; guard++) {
          const he = buf.indexOf('\r\n\r\n');
          if (he < 0) return;
          const head = buf.subarray(0, he).toString('latin1').split('\r\n');
          const [method, target] = head[0].split(' ');
          const headers: Record<string, string> = {};
          for (const h of head.slice(1)) {
            const i = h.indexOf(':');
            if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
          }
          let body: Buffer;
          let end: number;
          if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
            const parts: Buffer[] = [];
            let p = he + 4;
            let complete = false;
            for (let g = 0; g < 100_000; g++) {
              const le = buf.indexOf('\r\n', p);
              if (le < 0) break;
              const n = parseInt(buf.subarray(p, le).toString('latin1'), 16);
              if (n === 0) {
                const te = buf.indexOf('\r\n\r\n', le);
                if (te >= 0 || buf.subarray(le + 2, le + 4).toString() === '\r\n') {
                  p = buf.subarray(le + 2, le + 4).toString() === '\r\n' ? le + 4 : te + 4;
                  complete = true;
                }
                break;
              }
              if (le + 2 + n + 2 > buf.length) break;
              parts.push(buf.subarray(le + 2, le + 2 + n));
              p = le + 2 + n + 2;
            }
            if (!complete) return;
            body = Buffer.concat(parts);
            end = p;
          } else {
            const cl = Number(headers['content-length'] ?? 0);
            if (buf.length < he + 4 + cl) return;
            body = buf.subarray(he + 4, he + 4 + cl);
            end = he + 4 + cl;
          }
          buf = buf.subarray(end);
          const path = (target ?? '/').split('?')[0];
          if (method === 'GET' && path === '/api/version') {
            writeJson(sock, 200, '{"version":"0.12.0"}');
            continue;
          }
          if (handler({ method, path, headers, body }, sock) === 'stop') stopped = true;
        }
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function writeJson(sock: net.Socket, status: number, body: string): void {
  sock.write(`HTTP/1.1 ${status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

// ---------------------------------------------------------------------------------------------
// Probes

interface Row {
  figure: string;
  value: string;
}

type Probe = (fake: FakeOllama) => Promise<Row[]>;

const CHAT = (model = 'llama3.2', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'Why is the sky blue?' }], ...extra });

/** 1. A 5 MB `model` string. */
const probeModelName: Probe = async (fake) => {
  const rows: Row[] = [];
  fake.recordRequests = false;
  const gw = await startGw(fake.origin);
  try {
    const name = (c: string) => 'm'.repeat(5 * MiB - 1) + c;
    const first = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT(name('a'), { stream: false }), timeoutMs: 30_000, keepBody: false });
    rows.push({ figure: 'first request (5 MB model)', value: first.status ? `${first.status} in ${secs(first.ms)}` : `no answer (${first.error})` });
    const measureScrape = async (label: string) => {
      if (gw.exited) return rows.push({ figure: label, value: crashText(gw) });
      const s = await httpReq(gw.port, { path: '/metrics', timeoutMs: 60_000, keepBody: false });
      const what =
        s.status === undefined
          ? `no answer (${s.error})`
          : `${s.status}, ${s.bytes.toLocaleString('en-US')} bytes (${mb(s.bytes)}) in ${secs(s.ms)}${s.error ? ` (${s.error})` : ''}`;
      const errLine = gw.stderr
        .split('\n')
        .map((l) => l.trim())
        .find((l) => /^\w*Error\b/.test(l));
      rows.push({
        figure: label,
        value: gw.exited ? `${what}; then ${crashText(gw)}` : `${what}${s.error && errLine ? `; stderr: ${errLine.slice(0, 100)}` : ''}`,
      });
    };
    await measureScrape('next /metrics scrape: size, time');
    const statuses: string[] = [];
    for (let i = 0; i < 10 && !gw.exited; i++) {
      const r = await httpReq(gw.port, {
        method: 'POST',
        path: '/api/chat',
        body: CHAT(name(String.fromCharCode(98 + i)), { stream: false }),
        timeoutMs: 30_000,
        keepBody: false,
      });
      statuses.push(r.status ? String(r.status) : (r.error ?? 'none'));
    }
    await sleep(500);
    rows.push({ figure: '10 more such requests: answers', value: statuses.join(' ') || 'not sent' });
    rows.push({ figure: 'process after the 11 requests', value: statusOf(gw) });
    rows.push({ figure: 'gateway RSS after the 11 requests', value: rssOf(gw) });
    await measureScrape('/metrics scrape after the 11: size, time');
    rows.push({ figure: 'process at the end', value: statusOf(gw) });
  } finally {
    fake.recordRequests = true;
    await stopGw(gw);
  }
  return rows;
};

/** 2. Twelve clients declaring 60 MB bodies, sending 55 MB and stalling. */
const probeStalledBodies: Probe = async (fake) => {
  const rows: Row[] = [];
  fake.recordRequests = false;
  const gw = await startGw(fake.origin, { MAX_REQUEST_BODY_MB: '64' });
  const DECLARED = 60 * MiB;
  const SENT = 55 * MiB;
  interface Client {
    sock: net.Socket;
    sent: number;
    data: Buffer;
    status?: number;
    closed: boolean;
    error?: string;
  }
  const clients: Client[] = [];
  try {
    const rss0 = rssOf(gw);
    const prefix = Buffer.from('{"model":"llama3.2","messages":[{"role":"user","content":"');
    const filler = Buffer.alloc(MiB, 'x');
    const first = Buffer.concat([prefix, filler.subarray(prefix.length)]);
    const deadline = Date.now() + 120_000;
    const send = async (c: Client) => {
      await new Promise<void>((resolve) => {
        c.sock.once('connect', () => resolve());
        c.sock.once('close', () => resolve());
      });
      if (c.closed) return;
      c.sock.write(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\nContent-Length: ${DECLARED}\r\n\r\n`);
      while (c.sent < SENT && !c.closed && !c.sock.destroyed && Date.now() < deadline) {
        const piece = c.sent === 0 ? first : filler;
        c.sent += piece.length;
        if (!c.sock.write(piece)) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 2000);
            const done = () => {
              clearTimeout(t);
              c.sock.off('drain', done);
              c.sock.off('close', done);
              resolve();
            };
            c.sock.once('drain', done);
            c.sock.once('close', done);
          });
        }
      }
    };
    for (let i = 0; i < 12; i++) {
      const c: Client = { sock: net.connect(gw.port, '127.0.0.1'), sent: 0, data: Buffer.alloc(0), closed: false };
      c.sock.on('data', (d: Buffer) => {
        if (c.data.length < 64 * 1024) c.data = Buffer.concat([c.data, d]);
        c.status ??= parseResponse(c.data)?.status;
      });
      c.sock.on('error', (e) => (c.error ??= errText(e)));
      c.sock.on('close', () => (c.closed = true));
      clients.push(c);
    }
    const t0 = performance.now();
    await Promise.all(clients.map(send));
    const sendMs = performance.now() - t0;
    const describe = () => {
      const counts = new Map<string, number>();
      for (const c of clients) {
        const what = c.status !== undefined ? String(c.status) : c.closed ? `closed without a response${c.error ? ` (${c.error})` : ''}` : 'still waiting';
        counts.set(what, (counts.get(what) ?? 0) + 1);
      }
      return [...counts].map(([k, n]) => `${n}× ${k}`).join(', ');
    };
    const sentTotal = clients.reduce((a, c) => a + Math.min(c.sent, SENT), 0);
    rows.push({ figure: 'bytes written by the 12 clients', value: `${mb(sentTotal)} in ${secs(sendMs)}` });
    rows.push({ figure: 'gateway RSS before / right after the sends', value: `${rss0} / ${rssOf(gw)}` });
    rows.push({ figure: 'clients right after the sends', value: describe() });
    await sleep(10_000);
    rows.push({ figure: 'gateway RSS 10 s later (peak)', value: gw.exited ? crashText(gw) : `${rssOf(gw)} (peak ${mb(peakRssBytes(gw.child.pid!))})` });
    rows.push({ figure: 'clients 10 s later', value: describe() });
    const m = gw.exited ? undefined : await scrape(gw);
    const gauge = m?.find((s) => s.name === 'ollama_gateway_buffered_body_bytes');
    rows.push({ figure: 'ollama_gateway_buffered_body_bytes 10 s later', value: gauge ? String(gauge.value) : 'not exported' });
    rows.push({ figure: 'recorded errors', value: grew(undefined, m, 'ollama_request_errors_total', 'reason') });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    for (const c of clients) c.sock.destroy();
    fake.recordRequests = true;
    await stopGw(gw);
  }
  return rows;
};

/** 3. Other spellings of /api/chat. */
const probePaths: Probe = async (fake) => {
  const rows: Row[] = [];
  let gw = await startGw(fake.origin);
  try {
    for (const target of ['//api/chat', '/api//chat', '/api/%63hat', 'http://x/api/chat']) {
      if (gw.exited) gw = await startGw(fake.origin);
      const before = await scrape(gw);
      const seen = fake.requests.length;
      const body = CHAT('llama3.2', { stream: false });
      const r = await rawExchange(
        gw.port,
        `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        { timeoutMs: 10_000 },
      );
      await sleep(300);
      const after = gw.exited ? undefined : await scrape(gw);
      const counted = sum(after, 'ollama_requests_total', { endpoint: '/api/chat' }) - sum(before, 'ollama_requests_total', { endpoint: '/api/chat' });
      const received = fake.requests
        .slice(seen)
        .filter((q) => !(q.method === 'GET' && q.url === '/api/version'))
        .map((q) => `${q.method} ${q.url}`);
      const client = r.parsed ? String(r.parsed.status) : `no response${r.error ? ` (${r.error})` : ''}`;
      const countedText = Number.isNaN(counted) ? 'metrics unavailable' : counted > 0 ? 'counted' : 'NOT counted';
      rows.push({
        figure: `\`${target}\``,
        value: `${countedText} as endpoint="/api/chat"; client got ${client}; fake received ${received.length ? received.map((x) => `\`${x}\``).join(', ') : 'nothing'}${gw.exited ? `; ${crashText(gw)}` : ''}`,
      });
    }
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 4. A pass-through response with a `Trailer:` header. */
const probeTrailer: Probe = async () => {
  const rows: Row[] = [];
  const cases: { name: string; response: string; version: '1.1' | '1.0' }[] = [
    {
      name: 'Content-Length + `Trailer:`, HTTP/1.1 client',
      response: 'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 11\r\nTrailer: X-Checksum\r\n\r\n{"ok":true}',
      version: '1.1',
    },
    {
      name: 'chunked + `Trailer:`, HTTP/1.1 client',
      response:
        'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\nb\r\n{"ok":true}\r\n0\r\nX-Checksum: abc\r\n\r\n',
      version: '1.1',
    },
    {
      name: 'chunked + `Trailer:`, HTTP/1.0 client',
      response:
        'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\nb\r\n{"ok":true}\r\n0\r\nX-Checksum: abc\r\n\r\n',
      version: '1.0',
    },
  ];
  let current = cases[0];
  const up = await new TinyUpstream((_req, sock) => {
    sock.write(current.response);
    return 'continue';
  }).start();
  let gw = await startGw(up.origin);
  try {
    for (const c of cases) {
      current = c;
      if (gw.exited) gw = await startGw(up.origin);
      const r = await rawExchange(gw.port, `GET /api/tags HTTP/${c.version}\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`, { timeoutMs: 5000 });
      await sleep(500);
      const ok = await alive(gw);
      const client = r.parsed
        ? `${r.parsed.status}${r.parsed.headers.trailer ? ' (Trailer header relayed)' : ''}`
        : `no response${r.error ? ` (${r.error})` : ''}`;
      rows.push({
        figure: c.name,
        value: `client got ${client}; gateway ${ok ? 'survived (/healthz 200)' : gw.exited ? crashText(gw) : 'alive but /healthz failed'}`,
      });
    }
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/**
 * 5. A reset (TCP RST) right after the headers of a 200 NDJSON stream, from a tiny upstream: once
 * with no body byte sent, once after the first NDJSON line; and, for comparison, a plain close (FIN)
 * after the first line.
 */
const probeResetAfterHeaders: Probe = async () => {
  const rows: Row[] = [];
  const firstLine = fixture('chat-stream.ndjson').subarray(0, fixture('chat-stream.ndjson').indexOf(10) + 1);
  let bodyBytes: Buffer = Buffer.alloc(0);
  let rst = true;
  const up = await new TinyUpstream((req, sock) => {
    if (req.method !== 'POST' || req.path !== '/api/chat') {
      writeJson(sock, 404, '{"error":"not found"}');
      return 'continue';
    }
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n');
    if (bodyBytes.length) sock.write(`${bodyBytes.length.toString(16)}\r\n${bodyBytes.toString('latin1')}\r\n`, 'latin1');
    setTimeout(() => (rst ? sock.resetAndDestroy() : sock.destroy()), 50);
    return 'stop';
  }).start();
  let gw = await startGw(up.origin);
  try {
    for (const c of [
      { name: 'RST after headers only', bytes: Buffer.alloc(0), rst: true },
      { name: 'RST after headers + first line', bytes: firstLine, rst: true },
      { name: 'FIN after headers + first line', bytes: firstLine, rst: false },
    ]) {
      bodyBytes = c.bytes;
      rst = c.rst;
      if (gw.exited) gw = await startGw(up.origin);
      const before = await scrape(gw);
      const r = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT(), timeoutMs: 10_000 });
      await sleep(500);
      const after = gw.exited ? undefined : await scrape(gw);
      const client = r.status
        ? `${r.status}, ${r.bytes} body bytes, ${r.complete ? 'body ended normally' : `body cut (${r.error})`}`
        : `no response (${r.error})`;
      rows.push({
        figure: c.name,
        value: `client saw ${client}; counted ${grew(before, after, 'ollama_requests_total', 'status', { endpoint: '/api/chat' })}; error ${grew(before, after, 'ollama_request_errors_total', 'reason', { endpoint: '/api/chat' })}; ${gw.exited ? crashText(gw) : 'process alive'}`,
      });
    }
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/** 6. Upstream answers 101 to POST /api/chat. */
const probe101: Probe = async () => {
  const rows: Row[] = [];
  const up = await new TinyUpstream((req, sock) => {
    if (req.method === 'POST' && req.path === '/api/chat') {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      return 'stop';
    }
    writeJson(sock, 404, '{"error":"not found"}');
    return 'continue';
  }).start();
  const gw = await startGw(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '10' });
  try {
    const before = await scrape(gw);
    // If the client is still waiting near the cap, read the gauge then, before it gives up.
    let atCap: Sample[] | undefined;
    let answered = false;
    const capTimer = setTimeout(() => void scrape(gw).then((m) => (atCap = answered ? undefined : m)), 14_000);
    const r = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT('llama3.2', { stream: false }), timeoutMs: 15_000 });
    answered = r.status !== undefined || r.error !== 'timeout';
    clearTimeout(capTimer);
    const answer =
      r.status !== undefined
        ? `${r.status} after ${secs(r.ms)}`
        : r.error === 'timeout'
          ? 'no answer within 15 s'
          : `connection ended without an answer after ${secs(r.ms)} (${r.error})`;
    rows.push({ figure: 'time until the client got an answer', value: answer });
    if (atCap) rows.push({ figure: 'ollama_requests_in_flight at 14 s, client still waiting (sum)', value: String(sum(atCap, 'ollama_requests_in_flight')) });
    await sleep(500);
    const after = gw.exited ? undefined : await scrape(gw);
    const inflight = sum(after, 'ollama_requests_in_flight');
    rows.push({
      figure: `ollama_requests_in_flight 0.5 s after ${answered ? 'the answer' : 'the client gave up'} (sum)`,
      value: Number.isNaN(inflight) ? 'metrics unavailable' : String(inflight),
    });
    rows.push({ figure: 'counted error reason', value: grew(before, after, 'ollama_request_errors_total', 'reason') });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/** 7. POST /healthz. */
const probePostHealthz: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin);
  try {
    const seen = fake.requests.length;
    const r = await httpReq(gw.port, { method: 'POST', path: '/healthz', body: '{}', headers: { authorization: 'Bearer anything' }, timeoutMs: 10_000 });
    await sleep(300);
    const received = fake.requests.slice(seen).filter((q) => q.url.includes('healthz'));
    rows.push({ figure: 'client got', value: r.status ? `${r.status}${r.headers?.allow ? ` (Allow: ${r.headers.allow})` : ''}` : `no response (${r.error})` });
    rows.push({ figure: 'fake Ollama received it', value: received.length ? `yes: ${received.map((q) => `\`${q.method} ${q.url}\``).join(', ')}` : 'no' });
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 8. One 30 MB SSE event written in 64 KB pieces. */
const probeHugeEvent: Probe = async () => {
  const rows: Row[] = [];
  const head =
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"';
  const tail = '"},"finish_reason":null}]}';
  const filler = 30 * MiB - head.length - tail.length - 8;
  const stream = Buffer.from(
    `data: ${head}${'a'.repeat(filler)}${tail}\n\n` +
      'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}\n\n' +
      'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}\n\n' +
      'data: [DONE]\n\n',
  );
  const up = await new TinyUpstream((req, sock) => {
    if (req.method !== 'POST' || req.path !== '/v1/chat/completions') {
      writeJson(sock, 404, '{"error":"not found"}');
      return 'continue';
    }
    sock.setNoDelay(true);
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n');
    void (async () => {
      for (let off = 0; off < stream.length && !sock.destroyed; off += 64 * 1024) {
        const piece = stream.subarray(off, off + 64 * 1024);
        const ok = sock.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
        if (!ok) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, 30_000);
            sock.once('drain', () => {
              clearTimeout(t);
              r();
            });
          });
        } else await new Promise((r) => setImmediate(r));
      }
      if (!sock.destroyed) sock.write('0\r\n\r\n');
    })();
    return 'continue';
  }).start();
  const gw = await startGw(up.origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let finished = false;
    const probe = (async () => {
      let worst = 0;
      let n = 0;
      let failures = 0;
      for (let i = 0; i < 4000 && !finished; i++) {
        const t0 = performance.now();
        const r = await httpReq(gw.port, { path: '/healthz', timeoutMs: 10_000, agent });
        const ms = performance.now() - t0;
        n++;
        if (r.status !== 200) failures++;
        worst = Math.max(worst, ms);
        if (ms < 50) await sleep(50 - ms);
      }
      return { worst, n, failures };
    })();
    const r = await httpReq(gw.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: CHAT('llama3.2', { stream: true, stream_options: { include_usage: true } }),
      timeoutMs: 120_000,
      keepBody: false,
    });
    finished = true;
    const h = await probe;
    rows.push({
      figure: 'time for the client to receive it all',
      value:
        r.complete && r.bytes === stream.length
          ? `${secs(r.ms)} (${mb(r.bytes)}, byte count exact)`
          : `${r.error === 'timeout' ? 'not done within 120 s' : `ended after ${secs(r.ms)}`}: ${mb(r.bytes)} of ${mb(stream.length)} received${r.error ? ` (${r.error})` : ''}${r.status ? `, status ${r.status}` : ''}`,
    });
    rows.push({
      figure: 'worst /healthz latency (probed every 50 ms)',
      value: `${secs(h.worst)} over ${h.n} probes${h.failures ? `, ${h.failures} failed` : ''}`,
    });
    rows.push({ figure: 'gateway peak RSS', value: gw.exited ? crashText(gw) : mb(peakRssBytes(gw.child.pid!)) });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    agent.destroy();
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/** 9. Pass-through with `Connection: close`. */
const probeConnectionClose: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin);
  try {
    const r = await rawExchange(gw.port, `GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`, {
      timeoutMs: 10_000,
      waitClose: true,
    });
    const resp = r.parsed ? `${r.parsed.status}, Connection: ${r.parsed.headers.connection ?? '(none)'}` : 'no response';
    const held =
      r.responseMs === undefined
        ? 'response never completed'
        : r.closed && r.closedMs !== undefined
          ? `${secs(r.closedMs - r.responseMs)}`
          : `still open after ${secs(10_000 - r.responseMs)} (cap)`;
    rows.push({ figure: 'response', value: resp });
    rows.push({ figure: 'socket held open after the response', value: held });
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 10. A client that stops reading a multi-MB stream for 3 s (UPSTREAM_IDLE_TIMEOUT_SECONDS=1). */
const probeSlowReader: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '1' });
  try {
    const lines = fixture('chat-stream.ndjson').toString('utf8').trimEnd().split('\n');
    const last = lines[lines.length - 1];
    const word = 'x'.repeat(1000);
    const line = `{"model":"llama3.2","created_at":"2026-11-25T19:20:14.171201928Z","message":{"role":"assistant","content":"${word}"},"done":false}\n`;
    const count = Math.ceil((40 * MiB) / line.length);
    const body = Buffer.from(line.repeat(count) + last + '\n');
    fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body, chunking: { kind: 'every', size: 64 * 1024 } }, '/api/chat');
    const before = await scrape(gw);
    const result = await new Promise<{ status?: number; bytes: number; complete: boolean; error?: string; ms: number }>((resolve) => {
      const t0 = performance.now();
      const out: { status?: number; bytes: number; complete: boolean; error?: string; ms: number } = { bytes: 0, complete: false, ms: 0 };
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        out.ms = performance.now() - t0;
        if (error && !out.complete) out.error = error;
        resolve(out);
      };
      const payload = CHAT();
      const req = http.request({
        host: '127.0.0.1',
        port: gw.port,
        method: 'POST',
        path: '/api/chat',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      });
      const timer = setTimeout(() => {
        finish('timeout');
        req.destroy();
      }, 90_000);
      req.on('response', (res) => {
        out.status = res.statusCode;
        let paused = false;
        res.on('data', (c: Buffer) => {
          out.bytes += c.length;
          if (!paused) {
            paused = true;
            res.pause();
            setTimeout(() => res.resume(), 3000);
          }
        });
        res.on('end', () => {
          out.complete = true;
          finish();
        });
        res.on('aborted', () => finish('aborted'));
        res.on('error', (e) => finish(errText(e)));
        res.on('close', () => finish(out.complete ? undefined : 'closed before the end'));
      });
      req.on('error', (e) => finish(errText(e)));
      req.end(payload);
    });
    await sleep(500);
    const after = gw.exited ? undefined : await scrape(gw);
    rows.push({
      figure: 'client got everything?',
      value: `${result.complete && result.bytes === body.length ? 'yes' : 'NO'}: ${mb(result.bytes)} of ${mb(body.length)}, ${result.complete ? 'ended normally' : `cut (${result.error})`} after ${secs(result.ms)}${result.status ? ` (status ${result.status})` : ''}`,
    });
    rows.push({ figure: 'recorded status', value: grew(before, after, 'ollama_requests_total', 'status', { endpoint: '/api/chat' }) });
    rows.push({ figure: 'recorded error reason', value: grew(before, after, 'ollama_request_errors_total', 'reason', { endpoint: '/api/chat' }) });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 11. Stack traces on stderr after expected network errors. */
const probeStackTraces: Probe = async (fake) => {
  const rows: Row[] = [];
  let gw = await startGw(fake.origin);
  try {
    const cases: { name: string; run: (g: Gw) => Promise<void> }[] = [
      {
        name: 'malformed chunked body on /api/chat',
        run: async (g) => {
          await rawExchange(
            g.port,
            `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\nZZZ-not-hex\r\n\r\n`,
            { timeoutMs: 3000, waitClose: true },
          );
        },
      },
      {
        name: 'client reset mid-stream',
        run: async (g) => {
          fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-stream.ndjson'), gapMs: 100 }, '/api/chat');
          const body = CHAT();
          let reset = false;
          await rawExchange(
            g.port,
            `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
            {
              timeoutMs: 5000,
              onData: (sock, data) => {
                if (!reset && data.includes('"done":false')) {
                  reset = true;
                  sock.resetAndDestroy();
                }
              },
            },
          );
          await sleep(1500);
        },
      },
      {
        name: 'bad request line',
        run: async (g) => {
          await rawExchange(g.port, 'THIS IS NOT HTTP\r\n\r\n', { timeoutMs: 3000, waitClose: true });
        },
      },
    ];
    for (const c of cases) {
      if (gw.exited) gw = await startGw(fake.origin);
      const errBefore = gw.stderr.length;
      const nonJsonBefore = gw.nonJson;
      const linesBefore = gw.lines.length;
      await c.run(gw);
      await sleep(700);
      const newErr = gw.stderr.slice(errBefore).split('\n');
      const stack = newErr.filter(isStackLine);
      const head = newErr.find((l) => /Error|ERR_/.test(l));
      const stdoutStacks = gw.lines.slice(linesBefore).filter((l) => /\\n\s+at /.test(l)).length;
      const nonJson = gw.nonJson - nonJsonBefore;
      const ok = await alive(gw);
      rows.push({
        figure: c.name,
        value:
          `${stack.length} stack-trace line(s) on stderr${head ? ` (${head.trim().slice(0, 100)})` : ''}` +
          `${stdoutStacks ? `; ${stdoutStacks} stdout line(s) carrying a stack` : ''}${nonJson ? `; ${nonJson} non-JSON stdout line(s)` : ''}; gateway ${ok ? 'alive' : gw.exited ? crashText(gw) : 'not answering'}`,
      });
    }
  } finally {
    await stopGw(gw);
  }
  return rows;
};

const PROBES: { n: number; title: string; run: Probe }[] = [
  { n: 1, title: '5 MB `model` string', run: probeModelName },
  { n: 2, title: '12 × 55 MB of a 60 MB body, then stall', run: probeStalledBodies },
  { n: 3, title: 'path spellings of /api/chat', run: probePaths },
  { n: 4, title: 'upstream `Trailer:` header (pass-through)', run: probeTrailer },
  { n: 5, title: 'upstream reset after the headers of a 200 NDJSON stream', run: probeResetAfterHeaders },
  { n: 6, title: 'upstream answers 101 to POST /api/chat', run: probe101 },
  { n: 7, title: 'POST /healthz', run: probePostHealthz },
  { n: 8, title: 'one 30 MB SSE event in 64 KB writes', run: probeHugeEvent },
  { n: 9, title: 'pass-through GET /api/tags, `Connection: close`', run: probeConnectionClose },
  { n: 10, title: 'slow reader (3 s pause, idle timeout 1 s)', run: probeSlowReader },
  { n: 11, title: 'stack traces on stderr', run: probeStackTraces },
];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const gi = args.indexOf('--gateway');
  if (gi === -1 || !args[gi + 1]) {
    process.stderr.write('usage: node dist/bench/hostile-figures.js --gateway <dist>/src/main.js [--only 1,3]\n');
    process.exit(2);
  }
  gatewayMain = path.resolve(args[gi + 1]);
  const oi = args.indexOf('--only');
  const only = oi !== -1 ? new Set(args[oi + 1].split(',').map(Number)) : undefined;

  const fake = await new FakeOllama().start();
  const table: string[] = ['| # | Probe | Figure | Value |', '|---|---|---|---|'];
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  try {
    for (const p of PROBES) {
      if (only && !only.has(p.n)) continue;
      progress(`probe ${p.n}: ${p.title}`);
      const t0 = performance.now();
      let rows: Row[];
      try {
        rows = await p.run(fake);
      } catch (e) {
        rows = [{ figure: 'not measured', value: `probe failed: ${(e as Error).message ?? String(e)}` }];
      }
      progress(`probe ${p.n} done in ${secs(performance.now() - t0)}`);
      rows.forEach((r, i) => table.push(`| ${i === 0 ? p.n : ''} | ${i === 0 ? cell(p.title) : ''} | ${cell(r.figure)} | ${cell(r.value)} |`));
    }
  } finally {
    await fake.close();
  }
  const out = [
    `## Hostile-input figures: \`${gatewayMain}\``,
    '',
    `Node ${process.version}, ${new Date().toISOString()}. Each probe runs a fresh gateway (LOG_LEVEL=INFO, OLLAMA_POLL_INTERVAL_SECONDS=0, REQUEST_BODY_TIMEOUT_SECONDS=5, HEADERS_TIMEOUT_SECONDS=10, CLIENT_WRITE_TIMEOUT_SECONDS=30; settings a build does not know are ignored by it).`,
    '',
    ...table,
    '',
  ].join('\n');
  process.stdout.write(out);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`hostile-figures failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
