/**
 * A raw HTTP/1.1 client over node:net, for clients no SDK would be: bytes written in pieces and
 * with pauses, several requests in one write, broken framing, sockets reset on purpose. It reads
 * what the server sent back as bytes and parses one or several responses out of them
 * (Content-Length, chunked, or body-until-close framing).
 *
 * Nothing here throws on a socket error: hostile clients expect their sockets to break, so errors
 * are recorded (`error`) and the tests assert on what was received.
 *
 * The one raw-socket client of the tests and the benchmarks (the fuzzer's scripted client, which
 * must read thousands of responses without holding them, is test/helpers/fuzz/delivery.ts).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { decodeChunked, parseHead } from './http-wire';
import { eventually, sleep } from './wait';

export interface RawResponse {
  httpVersion: string;
  status: number;
  reason: string;
  /** Lower-case names; a repeated header's values are joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
  /** The connection closed before the body was complete (the body holds what arrived). */
  incomplete?: boolean;
}

export interface ParseOptions {
  /** Per response, in order: whether its request was HEAD (then it has no body). */
  head?: boolean[];
  /** The connection is closed: a body without framing ends at the end of the data. */
  closed?: boolean;
}

export interface Parsed {
  responses: RawResponse[];
  /** Bytes after the last complete response (a response still arriving, or garbage). */
  rest: Buffer;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Parses the responses in `data`, in order. Interim 1xx responses (other than 101) are skipped. A
 * response whose body is cut off by the close is returned with `incomplete` when `closed` is set.
 */
export function parseResponses(data: Buffer, opts: ParseOptions = {}): Parsed {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = data.indexOf(HEAD_END, at);
    if (headEnd === -1) break;
    const { startLine, headers } = parseHead(data.subarray(at, headEnd).toString('latin1'));
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(startLine);
    if (!m) break; // not a response: leave it in `rest` for the test to look at
    const status = Number(m[2]);
    const bodyStart = headEnd + HEAD_END.length;
    const res: RawResponse = { httpVersion: m[1], status, reason: m[3] ?? '', headers, body: Buffer.alloc(0) };
    if (status >= 100 && status < 200 && status !== 101) {
      at = bodyStart;
      continue;
    }
    const noBody = opts.head?.[responses.length] === true || status === 204 || status === 304 || status === 101;
    const read = noBody ? { body: res.body, end: bodyStart } : readBody(data, bodyStart, headers, opts.closed === true);
    if (read.end === -1) {
      // Cut off by the close, or still arriving.
      if (opts.closed) {
        responses.push({ ...res, body: read.body, incomplete: true });
        at = data.length;
      }
      break;
    }
    responses.push({ ...res, body: read.body });
    at = read.end;
  }
  return { responses, rest: data.subarray(at) };
}

/**
 * The body that starts at `start`, by the framing `headers` declare; `end` is the offset after it,
 * or -1 while it is not complete. A body without framing runs until the connection closes.
 */
function readBody(data: Buffer, start: number, headers: Record<string, string>, closed: boolean): { body: Buffer; end: number } {
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) return decodeChunked(data, start);
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (data.length - start < length) return { body: data.subarray(start), end: -1 };
    return { body: data.subarray(start, start + length), end: start + length };
  }
  return { body: data.subarray(start), end: closed ? data.length : -1 };
}

/** One request's bytes: `Host` and (with a body and no Transfer-Encoding) `Content-Length` added. */
export function rawRequest(method: string, target: string, opts: { body?: string | Buffer; headers?: Record<string, string>; host?: string } = {}): Buffer {
  const headers: Record<string, string> = { host: opts.host ?? '127.0.0.1', ...opts.headers };
  const names = Object.keys(headers).map((n) => n.toLowerCase());
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  if (body && !names.includes('content-length') && !names.includes('transfer-encoding')) headers['content-length'] = String(body.length);
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
}

/** One client connection, recording everything the server sends and when it closes. */
export class RawConnection {
  /** What arrived, in a buffer that doubles as it fills (so a stream of many MB is not copied on every read). */
  private buf = Buffer.alloc(0);
  private size = 0;
  private parsed: { key: string; responses: RawResponse[] } | undefined;
  closed = false;
  /** When the socket closed (`performance.now()`). */
  closedAt: number | undefined;
  /** The socket error, if any (ECONNRESET, EPIPE, …). */
  error: NodeJS.ErrnoException | undefined;
  /** Resolves once the socket has closed. */
  readonly whenClosed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => this.append(c));
    socket.on('error', (err) => (this.error ??= err));
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.closedAt = performance.now();
        resolve();
      }),
    );
  }

  private append(c: Buffer): void {
    if (this.size + c.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.size + c.length, this.buf.length * 2, 64 * 1024));
      this.buf.copy(grown, 0, 0, this.size);
      this.buf = grown;
    }
    c.copy(this.buf, this.size);
    this.size += c.length;
  }

  /**
   * Connects to 127.0.0.1:`port`, from `from` when given (another loopback address, 127.0.0.2 …,
   * for a test that needs several client addresses).
   */
  static open(port: number, ms = 2000, from?: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`could not connect to 127.0.0.1:${port} within ${ms} ms`));
      }, ms);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawConnection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Bytes received so far (a view that later bytes do not change). */
  get received(): Buffer {
    return this.buf.subarray(0, this.size);
  }

  /** Writes `data`; resolves once handed to the kernel, or once the socket failed (see `error`). */
  send(data: string | Buffer): Promise<void> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  /** Writes `pieces` one by one, `delayMs` apart. */
  async sendPieces(pieces: (string | Buffer)[], delayMs: number): Promise<void> {
    for (let i = 0; i < pieces.length; i++) {
      if (i > 0) await sleep(delayMs);
      await this.send(pieces[i]);
    }
  }

  /** The responses received so far (parsed again only when something arrived or the socket closed). */
  responses(opts: Omit<ParseOptions, 'closed'> = {}): RawResponse[] {
    const key = `${this.size} ${this.closed} ${opts.head?.join() ?? ''}`;
    if (this.parsed?.key !== key) this.parsed = { key, responses: parseResponses(this.received, { ...opts, closed: this.closed }).responses };
    return this.parsed.responses;
  }

  /**
   * Waits until `n` responses have arrived or the server closed the connection (then returns what
   * arrived, maybe fewer); fails after `ms` with what was received.
   */
  async waitForResponses(n: number, ms = 3000, opts: Omit<ParseOptions, 'closed'> = {}): Promise<RawResponse[]> {
    await eventually(
      () => this.closed || this.responses(opts).length >= n,
      () => `${n} response(s); received ${this.describe()}`,
      ms,
    );
    return this.responses(opts);
  }

  /** Waits for one response, failing if the server closed without one. */
  async response(ms = 3000, opts: Omit<ParseOptions, 'closed'> = {}): Promise<RawResponse> {
    const [res] = await this.waitForResponses(1, ms, opts);
    if (!res) assert.fail(`the server closed the connection without a response; received ${this.describe()}`);
    return res;
  }

  /** Whether the server closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const closed = await Promise.race([this.whenClosed.then(() => true as const), timeout]);
    clearTimeout(timer);
    return closed;
  }

  /** The received bytes, abridged, for failure messages. */
  describe(max = 400): string {
    const text = this.received.toString('latin1');
    const shown = text.length > max ? `${text.slice(0, max)}… (${text.length} bytes)` : text;
    return `${JSON.stringify(shown)}${this.closed ? ' [closed]' : ' [open]'}${this.error ? ` [${this.error.code ?? this.error.message}]` : ''}`;
  }

  /** Sends a TCP RST instead of a FIN. */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface Exchange {
  responses: RawResponse[];
  /** Whether the server closed the connection (within the wait). */
  closed: boolean;
  received: Buffer;
  error?: NodeJS.ErrnoException;
  describe(): string;
}

/**
 * Opens a connection, writes `data` (then half-closes it with `end`), waits for `n` responses
 * (or the close, or `ms`, without failing), then closes the connection.
 */
export async function exchange(
  port: number,
  data: string | Buffer,
  opts: { responses?: number; ms?: number; head?: boolean[]; end?: boolean } = {},
): Promise<Exchange> {
  const conn = await RawConnection.open(port);
  try {
    await conn.send(data);
    if (opts.end) conn.socket.end();
    const n = opts.responses ?? 1;
    const until = Date.now() + (opts.ms ?? 3000);
    while (!conn.closed && conn.responses({ head: opts.head }).length < n && Date.now() < until) await sleep(10);
    const description = conn.describe();
    return { responses: conn.responses({ head: opts.head }), closed: conn.closed, received: conn.received, error: conn.error, describe: () => description };
  } finally {
    conn.destroy();
  }
}
