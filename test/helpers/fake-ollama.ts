/**
 * A fake Ollama on 127.0.0.1 port 0 that answers with the recorded wire format in
 * `test/fixtures/` (status, Content-Type, framing, bytes), and that can be told to deliver a body in
 * awkward chunkings or to misbehave: refuse, reset mid-body, hang, send garbage.
 *
 * Like a real Ollama listening on loopback, it answers a request whose Host is not a local name
 * with 403 and an empty body.
 *
 * One module of ~440 lines on purpose: the server, its behaviours and its routing are one object
 * that every integration test drives (`next`, `byModel`, `requests`); it is left whole while other
 * changes land in it.
 */
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readRequest, REQUEST_SHAPES } from '../../src/request/read';
import { LLM_ROUTES } from '../../src/routes';
import { fixture, fixtureMeta } from './fixtures';

/** How a body is cut into writes. `groups`: as Ollama flushes (one line or event group per write). */
export type Chunking = { kind: 'groups' } | { kind: 'every'; size: number } | { kind: 'whole' } | { kind: 'at'; offsets: number[] };

export type Behavior =
  /** Serve these bytes with this status and Content-Type. */
  | {
      kind: 'body';
      status: number;
      contentType: string;
      body: Buffer;
      chunking?: Chunking;
      gapMs?: number;
      delayMs?: number;
      chunked?: boolean;
      /**
       * Ends the body (the chunked terminator) this long after the last write, in a write of its
       * own, as Go's `net/http` does once the handler has returned.
       */
      endGapMs?: number;
    }
  /** Accept the connection, then destroy it without answering. */
  | { kind: 'reset' }
  /** Read the request and never answer. */
  | { kind: 'hang' }
  /** Send the headers and the first `bytes` of `body`, then destroy the connection. */
  | { kind: 'reset-after'; status: number; contentType: string; body: Buffer; bytes: number }
  /** Send the headers and the first `bytes` of `body`, then go silent (connection stays open). */
  | { kind: 'stall'; status: number; contentType: string; body: Buffer; bytes: number; resumeAfterMs?: number };

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** sha256 and length of the body, also for uploads not kept in memory. */
  bodySha256: string;
  bodyLength: number;
}

const KNOWN_MODELS = new Set(['llama3.2', 'llama3.2:latest', 'qwen3:8b', 'all-minilm', 'all-minilm:latest']);
const POLL_PATHS = new Set(['/api/version', '/api/tags', '/api/ps']);
const LOCAL_HOSTS = /^(localhost|127(?:\.\d+){3}|\[::1\]|::1)(?::\d+)?$/i;

export class FakeOllama {
  readonly server: http.Server;
  port = 0;
  /** Every request received, in order. Upload bodies (`/api/blobs`) are hashed, not kept. */
  readonly requests: ReceivedRequest[] = [];
  /** TCP connections accepted so far (keep-alive reuse keeps this low). */
  connections = 0;
  /** Responses begun but not finished. */
  active = 0;
  /** Responses whose client (the gateway) went away before they were finished. */
  abandoned = 0;
  /** Default chunking of fixture bodies. */
  chunking: Chunking = { kind: 'groups' };
  /** Behaviours chosen by the request's `model` (faults on demand, for concurrent traffic). */
  readonly byModel = new Map<string, () => Behavior>();
  /** Keep every request in `requests` (turn off for long runs). */
  recordRequests = true;
  /**
   * What this Ollama holds, for tests with several: when set, `/api/tags` and `/api/ps` list these
   * models (names as Ollama lists them, `llama3.2:latest`) instead of the recorded fixtures, and a
   * call for a model not on disk is answered 404. Unset: the fixtures, as always.
   */
  models: { onDisk: string[]; loaded: string[] } | undefined;
  private readonly queue: { behavior: Behavior; path?: string }[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor() {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1, on an ephemeral port unless `port` is given (the quick-start check takes Ollama's 11434). */
  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', resolve);
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Answer the next request to `path` with `behavior` instead of the default. Without `path`, the
   * next request other than the gateway's background polls (GET /api/version, /api/tags, /api/ps).
   */
  next(behavior: Behavior, path?: string): this {
    this.queue.push({ behavior, path });
    return this;
  }

  private modelBehavior(body: Buffer): Behavior | undefined {
    if (this.byModel.size === 0 || body.length === 0) return undefined;
    const m = /"model"\s*:\s*"([^"]*)"/.exec(body.subarray(0, 512).toString('utf8'));
    const make = m ? this.byModel.get(m[1]) : undefined;
    return make?.();
  }

  private takeScripted(method: string, path: string): Behavior | undefined {
    const poll = method === 'GET' && POLL_PATHS.has(path);
    const i = this.queue.findIndex((q) => (q.path === undefined ? !poll : q.path === path));
    return i === -1 ? undefined : this.queue.splice(i, 1)[0].behavior;
  }

  /** The last request received on `path`. */
  last(path: string): ReceivedRequest | undefined {
    for (let i = this.requests.length - 1; i >= 0; i--) if (this.requests[i].url.split('?')[0] === path) return this.requests[i];
    return undefined;
  }

  /** Resolves once no response is in progress (or rejects after `ms`). */
  async idle(ms = 2000): Promise<void> {
    const until = Date.now() + ms;
    while (this.active > 0) {
      if (Date.now() > until) throw new Error(`fake Ollama still has ${this.active} responses in progress`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
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

  private async readBody(req: IncomingMessage, keep: boolean): Promise<{ body: Buffer; sha: string; length: number }> {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of req) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (keep) chunks.push(chunk as Buffer);
    }
    return { body: Buffer.concat(chunks), sha: hash.digest('hex'), length };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const upload = path.startsWith('/api/blobs/');
    let read;
    try {
      read = await this.readBody(req, !upload);
    } catch {
      return;
    }
    if (this.recordRequests)
      this.requests.push({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: read.body,
        bodySha256: read.sha,
        bodyLength: read.length,
      });

    if (!LOCAL_HOSTS.test(req.headers.host ?? '')) {
      // Ollama's allowedHostsMiddleware: 403, empty body.
      res.writeHead(403, { 'content-length': 0 });
      res.end();
      return;
    }

    const behavior = this.takeScripted(req.method ?? 'GET', path) ?? this.modelBehavior(read.body) ?? this.route(req.method ?? 'GET', path, read.body);
    this.active++;
    res.on('close', () => {
      this.active--;
      if (!res.writableFinished) this.abandoned++;
    });
    await this.perform(behavior, req, res);
  }

  private async perform(b: Behavior, req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (b.kind) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        return new Promise<void>((resolve) => res.on('close', () => resolve()));
      case 'reset-after': {
        res.writeHead(b.status, { 'content-type': b.contentType });
        res.write(b.body.subarray(0, b.bytes));
        await this.sleep(20);
        req.socket.destroy();
        return;
      }
      case 'stall': {
        res.writeHead(b.status, { 'content-type': b.contentType });
        res.write(b.body.subarray(0, b.bytes));
        if (b.resumeAfterMs === undefined) return new Promise<void>((resolve) => res.on('close', () => resolve()));
        await this.sleep(b.resumeAfterMs);
        if (!res.destroyed) res.end(b.body.subarray(b.bytes));
        return;
      }
      case 'body':
        return this.send(res, b);
    }
  }

  private async send(
    res: ServerResponse,
    b: { status: number; contentType: string; body: Buffer; chunking?: Chunking; gapMs?: number; delayMs?: number; chunked?: boolean; endGapMs?: number },
  ): Promise<void> {
    // Time before anything is sent, as while Ollama loads the model and evaluates the prompt.
    if (b.delayMs) await this.sleep(b.delayMs);
    if (res.destroyed) return;
    const body = b.body;
    const chunking = b.chunking ?? this.chunking;
    const streamed = /ndjson|event-stream/.test(b.contentType);
    // Go sends Content-Length when a non-streamed body fits its 2 KiB buffer, else chunks it.
    const chunked = b.chunked ?? (streamed || body.length > 2048);
    const headers: Record<string, string | number> = { 'content-type': b.contentType };
    if (!chunked) headers['content-length'] = body.length;
    res.writeHead(b.status, headers);
    const pieces = cut(body, chunking, streamed);
    for (let i = 0; i < pieces.length; i++) {
      if (res.destroyed) return;
      if (i === pieces.length - 1 && b.endGapMs === undefined) res.end(pieces[i]);
      else res.write(pieces[i]);
      if (i < pieces.length - 1) {
        if (b.gapMs) await this.sleep(b.gapMs);
        else await new Promise((r) => setImmediate(r));
      }
    }
    if (b.endGapMs !== undefined) {
      await this.sleep(b.endGapMs);
      if (!res.destroyed) res.end();
    } else if (pieces.length === 0) res.end();
  }

  /** Ollama's behaviour for a request, from the fixtures (one table of routes, kept in one place on purpose). */
  private route(method: string, path: string, body: Buffer): Behavior {
    const parsed = (() => {
      try {
        const v: unknown = JSON.parse(body.toString('utf8'));
        // Like Go's decoder into a struct: only an object has fields (`null`, `[]`, `1` have none).
        return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
      } catch {
        return undefined;
      }
    })();
    const json = method === 'POST' ? asOllamaReadsIt(path, body, parsed) : parsed;
    const f = (file: string, status?: number): Behavior => {
      const meta = fixtureMeta(file);
      return { kind: 'body', status: status ?? meta.status, contentType: meta.content_type, body: fixture(file) };
    };
    // Older clients send `name` instead of `model` on model-management calls.
    const model = typeof json?.model === 'string' ? json.model : typeof json?.name === 'string' ? json.name : undefined;
    const known =
      model !== undefined && KNOWN_MODELS.has(model) && (!this.models || this.models.onDisk.includes(model.includes(':') ? model : `${model}:latest`));

    if ((method === 'GET' || method === 'HEAD') && path === '/') return f('root.txt');
    if ((method === 'GET' || method === 'HEAD') && path === '/api/version') return f('version.json');
    if (this.models && method === 'GET' && (path === '/api/tags' || path === '/api/ps')) return listing(path, this.models);
    if ((method === 'GET' || method === 'HEAD') && path === '/api/tags') return f('tags.json');
    if (method === 'GET' && path === '/api/ps') return f('ps.json');
    if (method === 'GET' && path === '/v1/models') return f('openai-models.json');
    if (method === 'POST' && path.startsWith('/api/blobs/')) {
      return { kind: 'body', status: 201, contentType: 'text/plain; charset=utf-8', body: Buffer.alloc(0) };
    }
    if (method !== 'POST') return notFound();

    if (path.startsWith('/api/') && body.length === 0) return errorJson(400, 'missing request body');
    if (path.startsWith('/api/') && json === undefined) return errorJson(400, 'invalid character in request body');

    switch (path) {
      case '/api/show':
        return f('show.json');
      case '/api/pull':
        return known ? f('pull-stream.ndjson') : f('pull-error-notfound.ndjson');
      case '/api/chat':
        if (!model) return f('error-bad-request.json');
        if (!known) return errorJson(404, `model '${model}' not found`);
        if (Array.isArray(json?.messages) && json.messages.length === 0) return isUnload(json) ? f('chat-unload.json') : f('chat-load.json');
        if (json?.think === true || model === 'qwen3:8b') return f('chat-thinking-stream.ndjson');
        if (json?.tools) return f('chat-tools-nostream.json');
        return json?.stream === false ? f('chat-nostream.json') : f('chat-stream.ndjson');
      case '/api/generate':
        if (!model) return errorJson(400, 'model is required');
        if (!known) return errorJson(404, `model '${model}' not found`);
        if (json?.prompt === undefined || json.prompt === '') return isUnload(json ?? {}) ? f('generate-unload.json') : f('generate-load.json');
        if (json?.stream === false) return f('generate-nostream.json');
        if ((json?.options as Record<string, unknown> | undefined)?.num_predict !== undefined) return f('generate-length.ndjson');
        return f('generate-stream.ndjson');
      case '/api/embed':
        if (!known) return errorJson(404, `model '${model}' not found`);
        return f('embed.json');
      case '/api/embeddings':
        if (!known) return errorJson(404, `model '${model}' not found`);
        return { kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: Buffer.from('{"embedding":[0.5,-0.25,0.125]}') };
      case '/v1/chat/completions':
      case '/v1/completions':
      case '/v1/embeddings':
        return this.routeOpenAi(path, json, known, model);
      case '/v1/messages':
        return routeAnthropic(json, known);
      case '/v1/responses':
        return routeResponses(json, known);
      case '/v1/responses/compact':
        return routeCompact(json, known);
      case '/v1/audio/transcriptions':
        return routeTranscription(body);
      default:
        return notFound();
    }
  }

  private routeOpenAi(path: string, json: Record<string, unknown> | undefined, known: boolean, model: string | undefined): Behavior {
    if (json === undefined) return openAiError(400, 'invalid_request_error', 'invalid request body');
    if (!known) return openAiError(404, 'not_found_error', `model '${model ?? ''}' not found`);
    const includeUsage = (json.stream_options as Record<string, unknown> | undefined)?.include_usage === true;
    if (path === '/v1/embeddings') {
      return json.encoding_format === 'base64' ? fixtureBehavior('openai-embeddings-base64.json') : fixtureBehavior('openai-embeddings.json');
    }
    if (path === '/v1/completions') {
      if (json.stream !== true) return fixtureBehavior('openai-completions-nostream.json');
      return { kind: 'body', status: 200, contentType: 'text/event-stream', body: completionsStream(includeUsage) };
    }
    if (json.stream !== true) return fixtureBehavior('openai-chat-nostream.json');
    const full = fixture('openai-chat-stream.sse');
    return { kind: 'body', status: 200, contentType: 'text/event-stream', body: includeUsage ? full : withoutUsageEvent(full) };
  }
}

/**
 * The fields that decide the answer (model, stream, stream_options, Anthropic's max_tokens) as
 * Ollama's Go decoder reads them: the gateway's own Go
 * reader, which the differential test holds equal to Go's encoding/json. Other fields as JSON.parse
 * reads them. Undefined when Go refuses the body (Ollama answers 400).
 */
function asOllamaReadsIt(path: string, body: Buffer, parsed: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const route = LLM_ROUTES.find((r) => r.path === path);
  if (route === undefined || REQUEST_SHAPES[path] === undefined || body.length === 0) return parsed;
  const r = readRequest(route, body);
  if (!r.ok) return undefined;
  const json: Record<string, unknown> = { ...parsed, model: r.model === '' ? undefined : r.model, stream: r.stream ?? undefined };
  json.stream_options = r.includeUsage === null ? undefined : { include_usage: r.includeUsage };
  if (path === '/v1/messages') json.max_tokens = r.maxTokens ?? 0;
  return json;
}

/** `/api/tags` or `/api/ps` listing `models` in Ollama's shape. */
function listing(path: string, models: { onDisk: string[]; loaded: string[] }): Behavior {
  const GB = 1024 ** 3;
  const entries =
    path === '/api/tags'
      ? models.onDisk.map((name) => ({
          name,
          model: name,
          modified_at: '2026-01-01T00:00:00Z',
          size: 2 * GB,
          digest: name.length.toString(16).padStart(64, '0'),
        }))
      : models.loaded.map((name) => ({ name, model: name, size: 3 * GB, size_vram: 3 * GB, expires_at: '2099-01-01T00:00:00Z', context_length: 4096 }));
  return { kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: Buffer.from(JSON.stringify({ models: entries })) };
}

/** `keep_alive` 0 (a number or a duration string such as "0" or "0s"): the call unloads the model. */
function isUnload(json: Record<string, unknown>): boolean {
  const k = json.keep_alive;
  return k === 0 || (typeof k === 'string' && /^0+(\.0+)?[a-z]*$/i.test(k.trim()));
}

/** `POST /v1/messages` as Ollama's Anthropic middleware answers it (fixtures README §8.2). */
function routeAnthropic(json: Record<string, unknown> | undefined, known: boolean): Behavior {
  if (json === undefined || typeof json.model !== 'string' || !(typeof json.max_tokens === 'number' && json.max_tokens > 0)) {
    return fixtureBehavior('error-anthropic-bad-request.json');
  }
  if (!known) return fixtureBehavior('error-anthropic-model-not-found.json');
  const thinking = (json.thinking as Record<string, unknown> | undefined)?.type === 'enabled' || json.model === 'qwen3:8b';
  if (json.stream !== true) return fixtureBehavior('anthropic-messages-nostream.json');
  if (json.tools) return fixtureBehavior('anthropic-messages-tools-stream.sse');
  return fixtureBehavior(thinking ? 'anthropic-messages-thinking-stream.sse' : 'anthropic-messages-stream.sse');
}

/** `POST /v1/responses` as Ollama's Responses middleware answers it (fixtures README §8.3). */
function routeResponses(json: Record<string, unknown> | undefined, known: boolean): Behavior {
  if (json === undefined || typeof json.model !== 'string') return openAiError(400, 'invalid_request_error', 'model is required');
  if (!known) return fixtureBehavior('error-openai-responses-model-not-found.json');
  if (json.stream !== true) return fixtureBehavior('openai-responses-nostream.json');
  const reasoning = json.reasoning !== undefined || json.model === 'qwen3:8b';
  return fixtureBehavior(reasoning ? 'openai-responses-reasoning-stream.sse' : 'openai-responses-stream.sse');
}

/**
 * `POST /v1/responses/compact` (Ollama PR #18224; OpenAI's "Compact a response"): one JSON
 * `response.compaction` object with the compacted items and the call's usage.
 */
function routeCompact(json: Record<string, unknown> | undefined, known: boolean): Behavior {
  if (json === undefined || typeof json.model !== 'string') return openAiError(400, 'invalid_request_error', 'model is required');
  if (!known) return fixtureBehavior('error-openai-responses-model-not-found.json');
  const body = {
    id: 'resp_cmp_1',
    object: 'response.compaction',
    created_at: 1796600000,
    output: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say this is a test' }] },
      { type: 'compaction', encrypted_content: 'The user asked for a test sentence.' },
    ],
    usage: {
      input_tokens: 412,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 58,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 470,
    },
  };
  return { kind: 'body', status: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify(body) + '\n') };
}

/**
 * `POST /v1/audio/transcriptions` as Ollama's `TranscriptionMiddleware` answers it (fixtures README
 * §10.3): the form's `model` and `file` are required; the text alone comes back, as JSON or, with
 * `response_format=text`, as plain text. The form is read only as far as these tests need.
 */
function routeTranscription(body: Buffer): Behavior {
  const text = body.toString('latin1');
  const field = (name: string) => new RegExp(`name="${name}"\r\n\r\n([^\r]*)\r\n`).exec(text)?.[1];
  const model = field('model');
  if (model === undefined || model === '') return openAiError(400, 'invalid_request_error', 'model is required');
  if (!/name="file"; filename="[^"]*"/.test(text)) return openAiError(400, 'invalid_request_error', 'file is required: http: no such file');
  if (!KNOWN_MODELS.has(model)) return openAiError(404, 'not_found_error', `model '${model}' not found`);
  if (field('response_format') === 'text') {
    return { kind: 'body', status: 200, contentType: 'text/plain', body: Buffer.from('The quick brown fox jumps over the lazy dog.') };
  }
  return fixtureBehavior('openai-transcription.json');
}

/** Serve a fixture exactly as recorded (status, Content-Type, bytes). */
export function fixtureBehavior(file: string): Behavior {
  const meta = fixtureMeta(file);
  return { kind: 'body', status: meta.status, contentType: meta.content_type, body: fixture(file) };
}

function notFound(): Behavior {
  return { kind: 'body', status: 404, contentType: 'text/plain', body: Buffer.from('404 page not found') };
}

function errorJson(status: number, message: string): Behavior {
  return { kind: 'body', status, contentType: 'application/json; charset=utf-8', body: Buffer.from(JSON.stringify({ error: message })) };
}

function openAiError(status: number, type: string, message: string): Behavior {
  const body = JSON.stringify({ error: { message, type, param: null, code: null } }) + '\n';
  return { kind: 'body', status, contentType: 'application/json', body: Buffer.from(body) };
}

/** The chat stream as Ollama sends it without `include_usage`: the same events minus usage. */
export function withoutUsageEvent(sse: Buffer): Buffer {
  const events = sse
    .toString('utf8')
    .split('\n\n')
    .filter((e) => e !== '' && !e.includes('"choices":[]'));
  return Buffer.from(events.map((e) => e + '\n\n').join(''));
}

/**
 * A `/v1/completions` stream in Ollama's format (`CompletionChunk` field order: id, object, created,
 * choices, model, system_fingerprint, usage). With `include_usage`, every chunk carries a zeroed
 * usage object and a final usage event with `"choices":[]` precedes `[DONE]`.
 */
export function completionsStream(includeUsage: boolean, words = ['This', ' is', ' a', ' test', '.']): Buffer {
  const zero = includeUsage ? ',"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}' : '';
  const chunk = (created: number, text: string, finish: string | null) =>
    `data: {"id":"cmpl-245","object":"text_completion","created":${created},"choices":[{"text":${JSON.stringify(text)},"index":0,"finish_reason":${finish === null ? 'null' : JSON.stringify(finish)}}],"model":"llama3.2","system_fingerprint":"fp_ollama"${zero}}\n\n`;
  let out = '';
  words.forEach((w, i) => (out += chunk(1795634900 + i, w, null)));
  out += chunk(1795634900 + words.length, '', 'stop');
  if (includeUsage) {
    out += `data: {"id":"cmpl-245","object":"text_completion","created":${1795634900 + words.length},"choices":[],"model":"llama3.2","system_fingerprint":"fp_ollama","usage":{"prompt_tokens":12,"completion_tokens":${words.length},"total_tokens":${12 + words.length}}}\n\n`;
  }
  out += 'data: [DONE]\n\n';
  return Buffer.from(out);
}

/** Cuts `body` into the pieces one write each. */
export function cut(body: Buffer, chunking: Chunking, streamed: boolean): Buffer[] {
  switch (chunking.kind) {
    case 'whole':
      return body.length ? [body] : [];
    case 'every': {
      const out: Buffer[] = [];
      for (let i = 0; i < body.length; i += chunking.size) out.push(body.subarray(i, i + chunking.size));
      return out;
    }
    case 'at': {
      const out: Buffer[] = [];
      let prev = 0;
      for (const o of [...chunking.offsets].sort((a, b) => a - b)) {
        if (o > prev && o < body.length) {
          out.push(body.subarray(prev, o));
          prev = o;
        }
      }
      out.push(body.subarray(prev));
      return out;
    }
    case 'groups': {
      if (!streamed) return body.length ? [body] : [];
      // One write per NDJSON line or SSE event, as Ollama flushes.
      const sep = body.includes('data:') ? '\n\n' : '\n';
      const out: Buffer[] = [];
      let start = 0;
      let at = body.indexOf(sep, start);
      while (at !== -1) {
        out.push(body.subarray(start, at + sep.length));
        start = at + sep.length;
        at = body.indexOf(sep, start);
      }
      if (start < body.length) out.push(body.subarray(start));
      return out;
    }
  }
}
