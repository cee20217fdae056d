/** The hostile upstream's server: reads each request properly, answers it with a script, and keeps the connection for the next one. */
import net, { type AddressInfo } from 'node:net';
import { parseHead } from '../http-wire';
import { ByteReader } from './byte-reader';
import { reply, type Script } from './script';

const CRLF = '\r\n';

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
