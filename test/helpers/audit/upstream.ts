/**
 * The audit's scripted Ollama: answers each LLM call as the script says (found by its
 * `x-audit-call` header) and writes down what it did — the ground truth the books are held to.
 * Several instances (the backends of `OLLAMA_HOST`) share one `Truth`; one can be made to die.
 */
import { performance } from 'node:perf_hooks';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ALL_MODELS, type Attempt, type Ending, type PlannedCall } from './plan';
import { answerFor } from './wire';

export const CALL_HEADER = 'x-audit-call';

/**
 * What the upstream did with one attempt.
 * - `complete`: the final event was written (the end of the body may or may not have followed).
 * - `abandoned`: the gateway closed the connection before the final event was written.
 * - the other endings as in the script.
 */
export type Did = Ending | 'abandoned';

export interface TruthRecord {
  id: string;
  call: PlannedCall;
  backend: string;
  endpoint: string;
  model: string;
  streamed: boolean;
  status: number;
  did: Did;
  tokensIn: number;
  cached: number;
  /** Whether the answer carried a cached-token count at all. */
  cachedReported: boolean;
  tokensOut: number;
  loadNs?: number;
  promptNs?: number;
  evalNs?: number;
  /** When its backend died under it (performance.now()). */
  diedAt?: number;
}

/** Every attempt an upstream answered, by id; the last backend to answer an id has the word. */
export class Truth {
  readonly byId = new Map<string, TruthRecord>();
  /** Requests that named no call of the script (the gateway's own polls excepted). */
  readonly strays: string[] = [];
}

const LOCAL_HOSTS = /^(localhost|127(?:\.\d+){3}|\[::1\]|::1)(?::\d+)?$/i;

export class ScriptedOllama {
  readonly server: http.Server;
  port = 0;
  /** Responses begun and not yet finished. */
  active = 0;
  dead = false;
  private readonly sockets = new Set<Socket>();
  /** Records of the answers in progress (a death cuts them). */
  private readonly inProgress = new Set<TruthRecord>();

  constructor(
    readonly name: string,
    private readonly calls: Map<string, { call: PlannedCall; attempt: Attempt }>,
    private readonly truth: Truth,
  ) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (s: Socket) => {
      if (this.dead) return s.destroy();
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The backend dies: every connection is destroyed (streams in progress are cut), and from now on connections are refused. */
  async die(): Promise<void> {
    this.dead = true;
    // Streams cut by the death were reset, whatever the gateway was about to do with them.
    for (const rec of this.inProgress) {
      if (rec.did !== 'abandoned') continue;
      rec.did = 'reset';
      rec.diedAt = performance.now();
    }
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  async close(): Promise<void> {
    if (!this.dead) await this.die();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (!LOCAL_HOSTS.test(req.headers.host ?? '')) return void res.writeHead(403, { 'content-length': 0 }).end();
    if (req.method === 'GET' || req.method === 'HEAD') return this.own(path, res);
    const id = req.headers[CALL_HEADER];
    const planned = typeof id === 'string' ? this.calls.get(id) : undefined;
    if (!planned) {
      this.truth.strays.push(`${req.method} ${req.url}`);
      return void res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
    }
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      // The script only sends JSON; a body the gateway changed beyond reading is answered as the script says.
    }
    const includeUsage = (body.stream_options as Record<string, unknown> | undefined)?.include_usage === true;
    await this.serve(planned.call, planned.attempt, includeUsage, res);
  }

  private own(path: string, res: ServerResponse): void {
    const models = ALL_MODELS.map((name) => ({
      name,
      model: name,
      modified_at: '2026-12-01T00:00:00Z',
      size: 2 ** 31,
      digest: name.length.toString(16).padStart(64, '0'),
    }));
    const body =
      path === '/api/version'
        ? { version: '0.30.0' }
        : path === '/api/tags'
          ? { models }
          : path === '/api/ps'
            ? { models: models.map((m) => ({ ...m, size_vram: m.size, expires_at: '2099-01-01T00:00:00Z', context_length: 4096 })) }
            : undefined;
    if (!body)
      return void res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain' }).end(path === '/' ? 'Ollama is running' : '404 page not found');
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  private async serve(call: PlannedCall, attempt: Attempt, includeUsage: boolean, res: ServerResponse): Promise<void> {
    const a = answerFor(call, attempt, includeUsage);
    const rec: TruthRecord = {
      id: attempt.id,
      call,
      backend: this.name,
      endpoint: call.family.endpoint,
      model: call.model,
      streamed: call.streamed,
      status: a.status,
      did: attempt.ending === 'complete' ? 'abandoned' : attempt.ending,
      tokensIn: 0,
      cached: 0,
      cachedReported: false,
      tokensOut: 0,
    };
    this.truth.byId.set(attempt.id, rec);
    this.active++;
    this.inProgress.add(rec);
    let finished = false;
    res.on('close', () => {
      this.active--;
      this.inProgress.delete(rec);
      finished = true;
    });
    const body = Buffer.concat(a.pieces);
    res.writeHead(a.status, a.lengthFramed && !a.final ? { 'content-type': a.contentType, 'content-length': body.length } : { 'content-type': a.contentType });
    if (a.lengthFramed && !a.final) {
      if (a.reported) settle(rec, a.reported);
      rec.did = attempt.ending;
      res.end(body);
      return;
    }
    for (let i = 0; i < a.pieces.length; i++) {
      if (finished) return;
      res.write(a.pieces[i]);
      // Usage written before the final event is reported even if the stream is cut after it.
      if (i === a.usageAt && a.reported) settle(rec, a.reported);
      await pause(call.gapMs);
    }
    if (finished) return;
    if (a.end === 'reset') {
      rec.did = 'reset';
      await pause(1);
      res.socket?.destroy();
      return;
    }
    if (a.final) {
      res.write(a.final);
      rec.did = 'complete';
      if (a.reported) settle(rec, a.reported);
      // Go writes the chunked terminator after the handler returns: a separate write, a moment later.
      await new Promise((r) => setTimeout(r, call.endGapMs));
      if (!finished) res.end();
      return;
    }
    // A non-streamed body sent chunked (larger than Go's buffer), or a stream that stops without its final event.
    if (attempt.ending === 'complete' && a.reported && a.usageAt === undefined) settle(rec, a.reported);
    rec.did = attempt.ending;
    res.end();
  }
}

function settle(rec: TruthRecord, r: NonNullable<ReturnType<typeof answerFor>['reported']>): void {
  rec.tokensIn = r.tokensIn;
  rec.cached = r.cached ?? 0;
  rec.cachedReported = r.cached !== undefined;
  rec.tokensOut = r.tokensOut;
  rec.loadNs = r.loadNs;
  rec.promptNs = r.promptNs;
  rec.evalNs = r.evalNs;
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));
}
