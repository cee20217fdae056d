/**
 * The endpoint tables: the instrumented LLM endpoints (which Ollama path is which operation, which
 * API family it belongs to, which event format its streams use, and how the request's `stream`
 * flag defaults) and the gateway's own endpoints. Every other path is passed through. The
 * dispatcher, the tracing filter, the auth scopes and the README's endpoint table derive from here.
 *
 * Sources: Ollama `server/routes.go` (GenerateRoutes), `openai/openai.go`, `anthropic/anthropic.go`,
 * `middleware/openai.go`; the stream defaults are `Stream *bool` ("true by default") on the native
 * API and false on every compatibility endpoint (`/v1/responses`: only an explicit true streams).
 */

/** GenAI semantic-convention operation names (`gen_ai.operation.name`). */
export type Operation = 'chat' | 'text_completion' | 'embeddings';

/** Which API the endpoint speaks, and so the shape of the error bodies the gateway writes there. */
export type ApiFamily = 'ollama' | 'openai' | 'anthropic';

/**
 * The event format of the endpoint's streams: Ollama's NDJSON, OpenAI chat/completions chunks,
 * Anthropic Messages events, or OpenAI Responses events (the last three over SSE).
 */
export type EventFormat = 'ollama' | 'openai' | 'anthropic' | 'responses';

export interface LlmRoute {
  /** The route template, used as the `endpoint` label. */
  path: string;
  operation: Operation;
  api: ApiFamily;
  events: EventFormat;
  /** Whether a request without `stream` streams. */
  streamsByDefault: boolean;
  /** Whether the endpoint can stream at all. */
  canStream: boolean;
  /** The request is `multipart/form-data` and names the model in a form field (`request/multipart.ts`). */
  form?: boolean;
}

export const LLM_ROUTES: readonly LlmRoute[] = [
  { path: '/api/chat', operation: 'chat', api: 'ollama', events: 'ollama', streamsByDefault: true, canStream: true },
  { path: '/api/generate', operation: 'text_completion', api: 'ollama', events: 'ollama', streamsByDefault: true, canStream: true },
  { path: '/api/embed', operation: 'embeddings', api: 'ollama', events: 'ollama', streamsByDefault: false, canStream: false },
  { path: '/api/embeddings', operation: 'embeddings', api: 'ollama', events: 'ollama', streamsByDefault: false, canStream: false },
  { path: '/v1/chat/completions', operation: 'chat', api: 'openai', events: 'openai', streamsByDefault: false, canStream: true },
  { path: '/v1/completions', operation: 'text_completion', api: 'openai', events: 'openai', streamsByDefault: false, canStream: true },
  { path: '/v1/embeddings', operation: 'embeddings', api: 'openai', events: 'openai', streamsByDefault: false, canStream: false },
  { path: '/v1/messages', operation: 'chat', api: 'anthropic', events: 'anthropic', streamsByDefault: false, canStream: true },
  { path: '/v1/responses', operation: 'chat', api: 'openai', events: 'responses', streamsByDefault: false, canStream: true },
  // Compaction (Ollama PR #18224, merged 2026-09-04; OpenAI's "Compact a response",
  // POST /v1/responses/compact): a JSON request naming `model`, answered with one JSON
  // `response.compaction` object whose `usage` has `input_tokens` / `output_tokens`. Never streamed.
  { path: '/v1/responses/compact', operation: 'chat', api: 'openai', events: 'responses', streamsByDefault: false, canStream: false },
  // Speech to text (Ollama ≥ 0.20, `TranscriptionMiddleware` then `ChatHandler`): a chat call for the
  // form's model, answered `{"text":…}` or plain text, with no usage. GenAI names no transcription
  // operation; Ollama runs it as a chat.
  { path: '/v1/audio/transcriptions', operation: 'chat', api: 'openai', events: 'openai', streamsByDefault: false, canStream: false, form: true },
];

/** Instrumented routes by path, for the dispatcher. */
export const LLM_ROUTE_BY_PATH: ReadonlyMap<string, LlmRoute> = new Map(LLM_ROUTES.map((r) => [r.path, r]));

/** Who may call one of the gateway's own endpoints: anyone, or the holder of METRICS_BEARER_TOKEN. */
export type GatewayScope = 'open' | 'metrics';

/**
 * The gateway's own endpoints. They answer GET and HEAD only and never reach Ollama, whatever the
 * method; they get no server span.
 */
export const GATEWAY_ENDPOINTS: ReadonlyMap<string, GatewayScope> = new Map([
  ['/healthz', 'open'],
  ['/readyz', 'open'],
  ['/metrics', 'metrics'],
]);

/**
 * The web console (`endpoints/console.ts`): the page and its assets at `/console/…`, its JSON API
 * at `/console/api/v1/…`. Like the endpoints above: GET and HEAD only, never forwarded, no server
 * span. With CONSOLE=false the prefix is nobody's and passes through like any other path.
 */
export const CONSOLE_PREFIX = '/console';

export function isConsolePath(path: string): boolean {
  return path === CONSOLE_PREFIX || path.startsWith(`${CONSOLE_PREFIX}/`);
}

/**
 * Model management that may run for minutes to hours with nothing to send: a `pull`, `push` or
 * `create` with `"stream": false` (ollama-js's default) is silent until the download or upload is
 * done, and a blob upload is answered only once all of it arrived. These are not held to
 * UPSTREAM_IDLE_TIMEOUT_SECONDS (cutting them would make Ollama abort the pull); they end when
 * Ollama answers or the client leaves.
 */
const MODEL_TRANSFER_PATHS = new Set(['/api/pull', '/api/push', '/api/create']);

export function isModelTransfer(method: string | undefined, path: string): boolean {
  return method === 'POST' && (MODEL_TRANSFER_PATHS.has(path) || path.startsWith('/api/blobs/'));
}
