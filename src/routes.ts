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
