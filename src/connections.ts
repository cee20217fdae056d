/**
 * How many connections the gateway holds open, in all (MAX_CONNECTIONS) and for one client address
 * (MAX_CONNECTIONS_PER_CLIENT). Without a cap, idle connections up to the file-descriptor limit
 * make every new connection fail, the liveness probe's too, so one client could have the pod
 * killed. Past MAX_CONNECTIONS a small reserve of connections is kept for the gateway's own
 * endpoints (/healthz, /readyz, /metrics): on a reserve connection anything else gets 503 and
 * every answer closes it, and it may stay silent only briefly. When the reserve is taken too, the
 * connection held longest without a request in progress is closed to make room, as servers do
 * with idle keep-alive connections under pressure: so a probe gets through as long as one
 * connection is merely held open. Only when every connection is busy, and for a client over its
 * own cap, is a new connection answered 503 and closed at once.
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { clientKey } from './client-address';
import type { Logger } from './logger';
import { apiOf, sendJsonError } from './proxy/errors';
import { normalizeTarget } from './request/target';
import { GATEWAY_ENDPOINTS } from './routes';

/** Connections kept, beyond MAX_CONNECTIONS, for the gateway's own endpoints. */
export const OWN_ENDPOINT_RESERVE = 32;
/** How long a reserve connection may stay silent before it is closed. */
const RESERVE_IDLE_MS = 5000;
/** How long a refused connection is kept to carry its 503 before it is destroyed. */
const REFUSED_LINGER_MS = 1000;

/** File descriptors kept for everything but client connections (listening socket, files, polls, logs). */
const FD_HEADROOM = 128;

/** The process's limit on open files (Linux), or undefined when it cannot be read. */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The most client connections the file-descriptor limit leaves room for: each may come with a
 * connection to Ollama, and the reserve and some headroom come off first. A cap above this would
 * be reached by the kernel first, and then every new connection, the probe's too, would fail.
 */
export function connectionsTheFdLimitAllows(fdLimit: number | undefined, reserve = OWN_ENDPOINT_RESERVE): number | undefined {
  if (fdLimit === undefined) return undefined;
  return Math.max(1, Math.floor((fdLimit - FD_HEADROOM) / 2) - reserve);
}

const RESERVED = Symbol('ollama-gateway.reserved-connection');
const BUSY = Symbol('ollama-gateway.requests-in-progress');

type Tracked = Socket & { [RESERVED]?: boolean; [BUSY]?: number };

export type Admission = 'open' | 'reserve' | 'client_full' | 'full';

export class ConnectionGate {
  /** Every connection held, oldest first. */
  private readonly sockets = new Set<Tracked>();
  private readonly byClient = new Map<string, number>();
  /** Connections closed to make room for new ones. */
  evicted = 0;

  constructor(
    readonly max: number,
    readonly perClient: number,
    readonly reserve = OWN_ENDPOINT_RESERVE,
  ) {}

  /** Connections held now. */
  get held(): number {
    return this.sockets.size;
  }

  /** Counts `socket` in, unless a cap refuses it; it is counted out when it closes. */
  admit(socket: Socket): Admission {
    const client = clientKey(socket.remoteAddress);
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.perClient) return 'client_full';
    if (this.sockets.size >= this.max + this.reserve && !this.evictIdle()) return 'full';
    const admission: Admission = this.sockets.size >= this.max ? 'reserve' : 'open';
    const tracked = socket as Tracked;
    this.sockets.add(tracked);
    this.byClient.set(client, mine + 1);
    socket.once('close', () => {
      this.sockets.delete(tracked);
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left > 0) this.byClient.set(client, left);
      else this.byClient.delete(client);
    });
    return admission;
  }

  /** Marks a request in progress on `socket` until `res` closes. */
  busy(socket: Socket, res: http.ServerResponse): void {
    const tracked = socket as Tracked;
    tracked[BUSY] = (tracked[BUSY] ?? 0) + 1;
    res.once('close', () => {
      tracked[BUSY] = (tracked[BUSY] ?? 1) - 1;
    });
  }

  /** Closes the connection held longest with no request in progress; whether there was one. */
  private evictIdle(): boolean {
    for (const s of this.sockets) {
      if ((s[BUSY] ?? 0) > 0) continue;
      // Counted out now: its 'close' comes later, and the new connection takes its place.
      this.sockets.delete(s);
      s.destroy();
      this.evicted++;
      return true;
    }
    return false;
  }
}

/** Answers a connection over a cap with 503 before any request, and closes it. */
function refuse(socket: Socket, message: string): void {
  socket.on('error', () => socket.destroy());
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
  );
  // What the client sends meanwhile is read and thrown away, so the close does not reset the 503.
  socket.resume();
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}

/**
 * Puts `gate` in front of `server`: Node's own connection handling runs only for the connections
 * admitted. Returns the request handler to use, which keeps reserve connections to the gateway's
 * own endpoints.
 */
export function gateConnections(
  server: http.Server,
  gate: ConnectionGate,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  log: Logger,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const nodeListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Tracked) => {
    const admission = gate.admit(socket);
    if (admission === 'client_full' || admission === 'full') {
      log.debug({ client: clientKey(socket.remoteAddress), cap: admission }, 'connection refused at the connection cap');
      refuse(
        socket,
        admission === 'full'
          ? `the gateway holds its most connections (MAX_CONNECTIONS=${gate.max}); retry shortly`
          : `this client holds its most connections (MAX_CONNECTIONS_PER_CLIENT=${gate.perClient}); reuse or close one`,
      );
      return;
    }
    if (admission === 'reserve') {
      socket[RESERVED] = true;
      socket.setTimeout(RESERVE_IDLE_MS, () => socket.destroy());
    }
    for (const l of nodeListeners) l.call(server, socket);
  });
  return (req, res) => {
    gate.busy(req.socket, res);
    if (!(req.socket as Tracked)[RESERVED]) {
      handler(req, res);
      return;
    }
    const path = normalizeTarget(req.url ?? '/')?.path ?? '/';
    if (GATEWAY_ENDPOINTS.has(path)) {
      res.shouldKeepAlive = false;
      handler(req, res);
      return;
    }
    req.resume();
    sendJsonError(res, apiOf(path), 503, `the gateway holds its most connections (MAX_CONNECTIONS=${gate.max}); retry shortly`, {
      connection: 'close',
      'retry-after': '1',
    });
  };
}
