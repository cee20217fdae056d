/**
 * How many connections the gateway holds open, in all (MAX_CONNECTIONS) and for one client address
 * (MAX_CONNECTIONS_PER_CLIENT). Without a cap, idle connections up to the file-descriptor limit
 * make every new connection fail, the liveness probe's too, so one client could have the pod
 * killed. Past MAX_CONNECTIONS a small reserve of connections is kept for the gateway's own
 * endpoints (/healthz, /readyz, /metrics): on a reserve connection anything else gets 503 and
 * every answer closes it, and it may stay silent only briefly, so probes and scrapes get through
 * while the rest is full. A connection over either cap is answered 503 and closed at once.
 */
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

const RESERVED = Symbol('ollama-gateway.reserved-connection');

type Tracked = Socket & { [RESERVED]?: boolean };

export type Admission = 'open' | 'reserve' | 'client_full' | 'full';

export class ConnectionGate {
  private open = 0;
  private readonly byClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly perClient: number,
    readonly reserve = OWN_ENDPOINT_RESERVE,
  ) {}

  /** Connections held now. */
  get held(): number {
    return this.open;
  }

  /** Counts `socket` in, unless a cap refuses it; it is counted out when it closes. */
  admit(socket: Socket): Admission {
    const client = clientKey(socket.remoteAddress);
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.perClient) return 'client_full';
    if (this.open >= this.max + this.reserve) return 'full';
    const admission: Admission = this.open >= this.max ? 'reserve' : 'open';
    this.open++;
    this.byClient.set(client, mine + 1);
    socket.once('close', () => {
      this.open--;
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left > 0) this.byClient.set(client, left);
      else this.byClient.delete(client);
    });
    return admission;
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
