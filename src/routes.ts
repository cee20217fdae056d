/**
 * The instrumented LLM endpoints: which Ollama path is which operation, which API family it
 * belongs to, and how the request's `stream` flag defaults. Every other path is passed through.
 *
 * Sources: Ollama `server/routes.go` (GenerateRoutes) and `openai/openai.go`; the stream defaults are
 * `Stream *bool` ("true by default") on the native API and a plain `bool` (false) on `/v1`.
 */

/** GenAI semantic-convention operation names (`gen_ai.operation.name`). */
export type Operation = 'chat' | 'text_completion' | 'embeddings';

/** Which API the endpoint speaks: native Ollama (NDJSON streams) or OpenAI-compatible (SSE streams). */
export type ApiFamily = 'ollama' | 'openai';

export interface LlmRoute {
  /** The route template, used as the `endpoint` label. */
  path: string;
  operation: Operation;
  api: ApiFamily;
  /** Whether a request without `stream` streams. */
  streamsByDefault: boolean;
  /** Whether the endpoint can stream at all. */
  canStream: boolean;
}

export const LLM_ROUTES: readonly LlmRoute[] = [
  { path: '/api/chat', operation: 'chat', api: 'ollama', streamsByDefault: true, canStream: true },
  { path: '/api/generate', operation: 'text_completion', api: 'ollama', streamsByDefault: true, canStream: true },
  { path: '/api/embed', operation: 'embeddings', api: 'ollama', streamsByDefault: false, canStream: false },
  { path: '/api/embeddings', operation: 'embeddings', api: 'ollama', streamsByDefault: false, canStream: false },
  { path: '/v1/chat/completions', operation: 'chat', api: 'openai', streamsByDefault: false, canStream: true },
  { path: '/v1/completions', operation: 'text_completion', api: 'openai', streamsByDefault: false, canStream: true },
  { path: '/v1/embeddings', operation: 'embeddings', api: 'openai', streamsByDefault: false, canStream: false },
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
