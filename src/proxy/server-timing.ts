/**
 * The `Server-Timing` header (https://www.w3.org/TR/server-timing/) of an answer on an LLM route:
 * what the gateway knows when it sends the head. `queue`: time waiting for a slot under
 * MAX_CONCURRENT_REQUESTS (0 without a limit); `upstream`: from sending the call to Ollama to its
 * response head, with the backend that answered as `desc`. Browser devtools and clients show it;
 * SERVER_TIMING=false leaves it out.
 */

/** A backend's name as a quoted string (names come from the configuration, but are quoted safely). */
function quoted(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '')}"`;
}

/** The header's value; `upstreamMs` and `backend` undefined when no answer came from Ollama. */
export function serverTiming(queueMs: number, upstreamMs: number | undefined, backend: string | undefined): string {
  const parts = [`queue;dur=${queueMs.toFixed(1)}`];
  if (upstreamMs !== undefined) parts.push(`upstream;dur=${upstreamMs.toFixed(1)}${backend === undefined ? '' : `;desc=${quoted(backend)}`}`);
  return parts.join(', ');
}
