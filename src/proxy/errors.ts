/**
 * Upstream failures, mapped in one place to the status the client gets, the error reason recorded
 * in metrics, and the message in the JSON error body.
 */
import type { ServerResponse } from 'node:http';
import type { ErrorReason } from '../../otel/instruments';
import type { ApiFamily } from '../routes';
import { cutClient } from './client-gone';

/** Status recorded for a client that left before any response was sent (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499;

export interface UpstreamFailure {
  status: 502 | 504;
  reason: Extract<ErrorReason, 'upstream_unreachable' | 'upstream_timeout' | 'upstream_invalid_response'>;
  message: string;
}

/** Maps an error from the upstream request. `timedOut` is set when the gateway's idle timer fired. */
export function classifyUpstreamError(err: NodeJS.ErrnoException, origin: string, timedOut: boolean, idleMs: number): UpstreamFailure {
  if (timedOut) {
    return {
      status: 504,
      reason: 'upstream_timeout',
      message: `Ollama at ${origin} sent nothing for ${idleMs / 1000} s (UPSTREAM_IDLE_TIMEOUT_SECONDS)`,
    };
  }
  const code = err.code ?? '';
  if (code === 'ERR_UPSTREAM_HEAD_TIMEOUT') return { status: 504, reason: 'upstream_timeout', message: `Ollama at ${origin} ${err.message}` };
  // Node's HTTP parser (`HPE_*`) refused what Ollama sent, or the gateway could not relay it.
  if (code.startsWith('HPE_') || code === 'ERR_UPSTREAM_INVALID_RESPONSE') {
    const what = code === 'ERR_UPSTREAM_INVALID_RESPONSE' ? err.message : `sent an invalid HTTP response (${code})`;
    return { status: 502, reason: 'upstream_invalid_response', message: `Ollama at ${origin} ${what}` };
  }
  const what =
    code === 'ECONNREFUSED'
      ? 'refused the connection'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'could not be resolved'
        : code === 'ECONNRESET' || err.message === 'socket hang up'
          ? 'closed the connection before answering'
          : code === 'ETIMEDOUT'
            ? 'did not accept the connection in time'
            : `could not be reached (${code || err.message})`;
  return { status: 502, reason: 'upstream_unreachable', message: `Ollama at ${origin} ${what}` };
}

/** Anthropic's error `type` for a status (`anthropic.NewError` in Ollama, and Anthropic's own API). */
function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
    case 413:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    default:
      return status === 408 ? 'timeout_error' : 'api_error';
  }
}

/**
 * The JSON error body in the style of the API the client called: `{"error":"…"}` on Ollama's
 * native API, `{"error":{"message":…,"type":…}}` on OpenAI's (as Ollama's own `/v1` middleware
 * sends), `{"type":"error","error":{"type":…,"message":…}}` on Anthropic's, so each SDK surfaces it.
 */
function errorBody(api: ApiFamily, status: number, message: string, openai?: OpenAiErrorFields): string {
  if (api === 'openai') {
    const type = openai?.type ?? (status === 400 || status === 401 || status === 413 ? 'invalid_request_error' : 'api_error');
    return JSON.stringify({ error: { message, type, param: null, code: openai?.code ?? null } }) + '\n';
  }
  if (api === 'anthropic') return JSON.stringify({ type: 'error', error: { type: anthropicErrorType(status), message } }) + '\n';
  return JSON.stringify({ error: message });
}

/** The `type` and `code` of an OpenAI error body, when the status alone does not say them (429: `tokens`, `rate_limit_exceeded`). */
export interface OpenAiErrorFields {
  type?: string;
  code?: string;
}

/** Which error shape a path's API uses: Anthropic's on `/v1/messages`, OpenAI's on the rest of `/v1/`, Ollama's elsewhere. */
export function apiOf(path: string): ApiFamily {
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return 'anthropic';
  return path.startsWith('/v1/') ? 'openai' : 'ollama';
}

/**
 * Answers with a JSON error in the API's own shape; when the response has already started (a
 * stream broke off), cuts the connection instead, so the client sees the failure.
 */
export function sendJsonError(
  res: ServerResponse,
  api: ApiFamily,
  status: number,
  message: string,
  extraHeaders: Record<string, string> = {},
  openai?: OpenAiErrorFields,
): void {
  if (res.headersSent || res.destroyed) {
    cutClient(res);
    return;
  }
  const body = errorBody(api, status, message, openai);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extraHeaders });
  res.end(body);
}
