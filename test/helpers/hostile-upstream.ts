/**
 * A misbehaving Ollama: a raw TCP server on 127.0.0.1 port 0 that reads each HTTP request properly
 * (head, then the body by Content-Length or chunked) and answers with a script of raw bytes, delays,
 * resets and hang-ups — the answers an HTTP library would never let a well-behaved server send.
 *
 *   const up = await new HostileUpstream().start();
 *   up.next(switchingProtocols(), { path: '/api/chat' });
 *   up.next([...streamHead('application/x-ndjson'), write(chunk('{"a":1}\n')), reset()]);
 *
 * Scripts are taken from a queue (the first entry whose `path`/`method` match), then from the
 * per-path defaults (`on`), then from `otherwise`. A script that finishes without closing the
 * connection leaves it open, and the next request on it is read and answered the same way
 * (keep-alive), as the gateway's connection pool expects.
 */
import net, { type AddressInfo } from 'node:net';

/** One move of a scripted answer. */
export type Step =
  /** Write these bytes (waits until the socket can take more: a slow reader slows the script). */
  | { kind: 'write'; data: Buffer }
  /** Do nothing for a while. */
  | { kind: 'wait'; ms: number }
  /** Write `data` every `everyMs`, forever, until the peer goes away. */
  | { kind: 'repeat'; data: Buffer; everyMs: number }
  /** Send a TCP RST (`socket.resetAndDestroy()`). */
  | { kind: 'reset' }
  /** Half-close: send FIN, keep reading. */
  | { kind: 'end' }
  /** Close the connection (FIN, then destroy). */
  | { kind: 'close' }
  /** Stop answering; the connection stays open until the peer closes it. */
  | { kind: 'hang' };

export type Script = Step[];

export interface ReceivedRequest {
  method: string;
  /** The request target as sent. */
  target: string;
  /** The target without its query. */
  path: string;
  /** `HTTP/1.1`, `HTTP/1.0`. */
  version: string;
  /** Header names lower-cased, repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Body bytes received (the body itself is not kept). */
  bodyLength: number;
  /** The connection it arrived on. */
  connection: UpstreamConnection;
  /** The script has played to its end (false while it writes, waits, repeats or hangs). */
  answered: boolean;
  /** Bytes of the answer the script has written so far. */
  bytesWritten: number;
}

export interface UpstreamConnection {
  id: number;
  socket: net.Socket;
  requests: ReceivedRequest[];
  /** The socket is closed (by either side). */
  closed: boolean;
  /** The peer (the gateway) ended or reset the connection before this server closed it. */
  closedByPeer: boolean;
  /** Resolves when the socket closes. */
  whenClosed: Promise<void>;
}

interface Queued {
  script: Script;
  path?: string;
  method?: string;
}

// ---------------------------------------------------------------------------------------------
// Builders

const CRLF = '\r\n';
const toBuffer = (data: string | Buffer): Buffer => (typeof data === 'string' ? Buffer.from(data, 'utf8') : data);

export const write = (data: string | Buffer): Step => ({ kind: 'write', data: toBuffer(data) });
export const wait = (ms: number): Step => ({ kind: 'wait', ms });
export const repeat = (data: string | Buffer, everyMs: number): Step => ({ kind: 'repeat', data: toBuffer(data), everyMs });
export const reset = (): Step => ({ kind: 'reset' });
export const end = (): Step => ({ kind: 'end' });
export const close = (): Step => ({ kind: 'close' });
export const hang = (): Step => ({ kind: 'hang' });

export type HeaderList = Record<string, string | number> | [string, string | number][];

/** A response head: status line, headers in the given order, blank line. */
export function head(status: number, headers: HeaderList = {}, reason = REASONS[status] ?? 'Unknown', version = 'HTTP/1.1'): string {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return `${version} ${status} ${reason}${CRLF}${list.map(([k, v]) => `${k}: ${v}${CRLF}`).join('')}${CRLF}`;
}

const REASONS: Record<number, string> = { 101: 'Switching Protocols', 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 500: 'Internal Server Error' };

/** One chunk of a chunked body. */
export function chunk(data: string | Buffer): Buffer {
  const b = toBuffer(data);
  return Buffer.concat([Buffer.from(b.length.toString(16) + CRLF), b, Buffer.from(CRLF)]);
}

/** The last chunk, with optional trailer fields. */
export function lastChunk(trailers: Record<string, string> = {}): string {
  return `0${CRLF}${Object.entries(trailers)
    .map(([k, v]) => `${k}: ${v}${CRLF}`)
    .join('')}${CRLF}`;
}

/** A complete answer framed by Content-Length. */
export function reply(status: number, contentType: string, body: string | Buffer, extra: HeaderList = {}): Script {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const extraList = Array.isArray(extra) ? extra : Object.entries(extra);
  return [write(Buffer.concat([Buffer.from(head(status, [['Content-Type', contentType], ['Content-Length', b.length], ...extraList])), b]))];
}

/** A complete chunked answer, one chunk per piece (as Ollama flushes a stream), `gapMs` apart. */
export function chunkedReply(
  status: number,
  contentType: string,
  pieces: (string | Buffer)[],
  opts: { gapMs?: number; extra?: HeaderList; trailers?: Record<string, string> } = {},
): Script {
  const extraList = Array.isArray(opts.extra) ? opts.extra : Object.entries(opts.extra ?? {});
  const steps: Script = [write(head(status, [['Content-Type', contentType], ['Transfer-Encoding', 'chunked'], ...extraList]))];
  for (const piece of pieces) {
    if (opts.gapMs) steps.push(wait(opts.gapMs));
    steps.push(write(chunk(piece)));
  }
  steps.push(write(lastChunk(opts.trailers)));
  return steps;
}

/** The head of a chunked 200 stream, as Ollama starts one. */
export function streamHead(contentType: string): Script {
  return [
    write(
      head(200, [
        ['Content-Type', contentType],
        ['Transfer-Encoding', 'chunked'],
      ]),
    ),
  ];
}

/** `101 Switching Protocols` to a request that asked for no upgrade; then the peer waits, as an upgraded one would. */
export function switchingProtocols(): Script {
  return [
    write(
      head(101, [
        ['Connection', 'Upgrade'],
        ['Upgrade', 'websocket'],
      ]),
    ),
    hang(),
  ];
}

/** Arbitrary bytes, then `then` (default: keep the connection open). */
export function raw(bytes: string | Buffer, then: Step = hang()): Script {
  return [write(bytes), then];
}

// ---------------------------------------------------------------------------------------------
// HTTP parsing, shared with raw-socket clients in tests

export interface ParsedHead {
  /** The first line: request line or status line. */
  startLine: string;
  /** Header names lower-cased, repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Header fields as sent. */
  rawHeaders: [string, string][];
}

export function parseHead(text: string): ParsedHead {
  const lines = text.split(CRLF);
  const headers: Record<string, string> = {};
  const rawHeaders: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = (colon === -1 ? line : line.slice(0, colon)).trim();
    const value = colon === -1 ? '' : line.slice(colon + 1).trim();
    rawHeaders.push([name, value]);
    const key = name.toLowerCase();
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
  }
  return { startLine: lines[0], headers, rawHeaders };
}

export interface Dechunked {
  body: Buffer;
  /** The last chunk (and its trailer section) arrived. */
  complete: boolean;
  trailers: Record<string, string>;
}

/** Decodes as much of a chunked body as `buf` holds. */
export function decodeChunked(buf: Buffer): Dechunked {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf(CRLF, at);
    if (eol === -1) break;
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0], 16);
    if (!Number.isFinite(size)) break;
    if (size === 0) {
      // The trailer section (possibly empty) ends with a blank line.
      const endOfTrailers = buf.indexOf(CRLF + CRLF, eol);
      if (endOfTrailers === -1) break;
      const fields = endOfTrailers > eol ? buf.subarray(eol + 2, endOfTrailers).toString('latin1') : '';
      return { body: Buffer.concat(parts), complete: true, trailers: parseHead(CRLF + fields).headers };
    }
    if (eol + 2 + size + 2 > buf.length) {
      parts.push(buf.subarray(eol + 2, Math.min(buf.length, eol + 2 + size)));
      break;
    }
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return { body: Buffer.concat(parts), complete: false, trailers: {} };
}

// ---------------------------------------------------------------------------------------------
// The server

/** Buffers a socket's bytes and hands them out by delimiter or count. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private discarding = false;
  private wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      if (this.discarding) return;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.poke();
    });
    const stop = () => {
      this.ended = true;
      this.poke();
    };
    socket.on('end', stop);
    socket.on('close', stop);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    await new Promise<void>((r) => (this.wake = r));
    return true;
  }

  /** The bytes up to `delim` (consumed with it), or undefined if the connection ends first. */
  async upTo(delim: string): Promise<Buffer | undefined> {
    for (;;) {
      const at = this.buf.indexOf(delim);
      if (at !== -1) {
        const out = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + delim.length);
        return out;
      }
      if (!(await this.more())) return undefined;
    }
  }

  /** Consumes `n` bytes; false if the connection ends first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.buf.length === 0 && !(await this.more())) return false;
      const take = Math.min(n, this.buf.length);
      this.buf = this.buf.subarray(take);
      n -= take;
    }
    return true;
  }

  /** Drops whatever arrives from now on (after the script stopped reading). */
  discard(): void {
    this.discarding = true;
    this.buf = Buffer.alloc(0);
  }
}

export class HostileUpstream {
  readonly server: net.Server;
  port = 0;
  /** Every request received, in order. */
  readonly requests: ReceivedRequest[] = [];
  readonly connections: UpstreamConnection[] = [];
  /** The answer when neither the queue nor `on` has one. Default: 200 `{}`. */
  otherwise: (req: ReceivedRequest) => Script = () => reply(200, 'application/json; charset=utf-8', '{}');
  private readonly queue: Queued[] = [];
  private readonly byPath = new Map<string, () => Script>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closing = false;

  constructor() {
    this.server = net.createServer((socket) => void this.serve(socket));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Answer the next request (matching `path` and `method` when given) with `script`. */
  next(script: Script, match: { path?: string; method?: string } = {}): this {
    this.queue.push({ script, ...match });
    return this;
  }

  /** Answer every request to `path` with a fresh `make()` (after the queue). */
  on(path: string, make: () => Script): this {
    this.byPath.set(path, make);
    return this;
  }

  /** The last request received on `path`. */
  last(path: string): ReceivedRequest | undefined {
    for (let i = this.requests.length - 1; i >= 0; i--) if (this.requests[i].path === path) return this.requests[i];
    return undefined;
  }

  /** Resolves with the next request to `path` received after this call, or rejects after `ms`. */
  async nextRequest(path: string, ms = 3000): Promise<ReceivedRequest> {
    const seen = this.requests.length;
    const until = Date.now() + ms;
    for (;;) {
      const r = this.requests.slice(seen).find((q) => q.path === path);
      if (r) return r;
      if (Date.now() > until) throw new Error(`the upstream received no request to ${path} within ${ms} ms`);
      await this.sleep(5);
    }
  }

  /** Resolves when `conn` is closed, or rejects after `ms`. */
  async closedWithin(conn: UpstreamConnection, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        conn.whenClosed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the gateway kept upstream connection #${conn.id} open for more than ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private pick(req: ReceivedRequest): Script {
    const i = this.queue.findIndex((q) => (q.path === undefined || q.path === req.path) && (q.method === undefined || q.method === req.method));
    if (i !== -1) return this.queue.splice(i, 1)[0].script;
    const make = this.byPath.get(req.path);
    return make ? make() : this.otherwise(req);
  }

  private async serve(socket: net.Socket): Promise<void> {
    let resolveClosed!: () => void;
    const conn: UpstreamConnection = {
      id: this.connections.length + 1,
      socket,
      requests: [],
      closed: false,
      closedByPeer: false,
      whenClosed: new Promise<void>((r) => (resolveClosed = r)),
    };
    this.connections.push(conn);
    let weClosed = false;
    socket.on('error', () => {});
    socket.on('end', () => {
      if (!weClosed) conn.closedByPeer = true;
    });
    socket.on('close', (hadError) => {
      if (!weClosed && hadError) conn.closedByPeer = true;
      conn.closed = true;
      resolveClosed();
    });
    const reader = new ByteReader(socket);

    for (;;) {
      const req = await this.readRequest(reader, conn);
      if (!req || this.closing) return;
      const outcome = await this.play(this.pick(req), req, socket, () => (weClosed = true));
      if (outcome === 'stop') {
        reader.discard();
        return;
      }
    }
  }

  private async readRequest(reader: ByteReader, conn: UpstreamConnection): Promise<ReceivedRequest | undefined> {
    const headBytes = await reader.upTo(CRLF + CRLF);
    if (headBytes === undefined) return undefined;
    const parsed = parseHead(headBytes.toString('latin1'));
    const [method = '', target = '', version = ''] = parsed.startLine.split(' ');
    const req: ReceivedRequest = {
      method,
      target,
      path: target.split('?')[0],
      version,
      headers: parsed.headers,
      bodyLength: 0,
      connection: conn,
      answered: false,
      bytesWritten: 0,
    };
    if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) {
      for (;;) {
        const sizeLine = await reader.upTo(CRLF);
        if (sizeLine === undefined) return undefined;
        const size = parseInt(sizeLine.toString('latin1').split(';')[0], 16);
        if (!Number.isFinite(size)) return undefined;
        if (size === 0) {
          // Trailer fields, up to the blank line.
          for (;;) {
            const line = await reader.upTo(CRLF);
            if (line === undefined) return undefined;
            if (line.length === 0) break;
          }
          break;
        }
        if (!(await reader.skip(size + 2))) return undefined;
        req.bodyLength += size;
      }
    } else {
      const length = Number(parsed.headers['content-length'] ?? 0);
      if (!(await reader.skip(length))) return undefined;
      req.bodyLength = length;
    }
    this.requests.push(req);
    conn.requests.push(req);
    return req;
  }

  /** Plays `script`; 'stop' when the connection is no longer usable for another request. */
  private async play(script: Script, req: ReceivedRequest, socket: net.Socket, closingOurselves: () => void): Promise<'next' | 'stop'> {
    for (const step of script) {
      if (socket.destroyed || this.closing) return 'stop';
      switch (step.kind) {
        case 'write':
          req.bytesWritten += step.data.length;
          if (!socket.write(step.data)) await drained(socket);
          break;
        case 'wait':
          await this.sleep(step.ms);
          break;
        case 'repeat':
          while (!socket.destroyed && !socket.writableEnded && !this.closing) {
            req.bytesWritten += step.data.length;
            if (!socket.write(step.data)) await drained(socket);
            await this.sleep(step.everyMs);
          }
          return 'stop';
        case 'reset':
          closingOurselves();
          socket.resetAndDestroy();
          return 'stop';
        case 'end':
          closingOurselves();
          socket.end();
          req.answered = true;
          return 'stop';
        case 'close':
          closingOurselves();
          socket.end();
          socket.destroySoon();
          req.answered = true;
          return 'stop';
        case 'hang':
          return 'stop';
      }
    }
    req.answered = true;
    return 'next';
  }
}

/** Resolves when the socket can take more, or when it closed. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
