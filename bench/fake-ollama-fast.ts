/**
 * A fast fake Ollama for benchmarks, as cheap per response as it can be so that it takes little of
 * the machine it shares with the proxy under test. Every response body is built once and cached.
 *
 *   POST /api/chat               NDJSON stream (non-streamed JSON when the body has "stream":false)
 *   POST /v1/chat/completions    SSE stream with usage
 *   GET  /api/tags               the tags list
 *   *    (OTLP port)             accepts and discards OTLP exports
 *
 * Request headers set the shape: `x-bench-tokens` (default 32) and `x-bench-delay-ms` (default 0:
 * tokens are written back to back, one write per token, yielding to the event loop between them).
 *
 * Usage: node dist/bench/fake-ollama-fast.js <port> <otlp-port>
 */
import http from 'node:http';

const CREATED = '2026-11-25T19:20:14.171201928Z';

function ndjsonLines(tokens: number): Buffer[] {
  const lines: Buffer[] = [];
  for (let i = 0; i < tokens; i++) {
    lines.push(Buffer.from(`{"model":"llama3.2","created_at":"${CREATED}","message":{"role":"assistant","content":" tok${i}"},"done":false}\n`));
  }
  const evalNs = tokens * 14_000_000;
  lines.push(
    Buffer.from(
      `{"model":"llama3.2","created_at":"${CREATED}","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":${evalNs + 60_000_000},"load_duration":20000000,"prompt_eval_count":26,"prompt_eval_duration":30000000,"eval_count":${tokens},"eval_duration":${evalNs}}\n`,
    ),
  );
  return lines;
}

function sseEvents(tokens: number): Buffer[] {
  const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634883,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":';
  const events: Buffer[] = [];
  for (let i = 0; i < tokens; i++) events.push(Buffer.from(`data: ${head}[{"index":0,"delta":{"content":" tok${i}"},"finish_reason":null}]}\n\n`));
  events.push(
    Buffer.from(
      `data: ${head}[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: ${head}[],"usage":{"prompt_tokens":26,"completion_tokens":${tokens},"total_tokens":${26 + tokens}}}\n\ndata: [DONE]\n\n`,
    ),
  );
  return events;
}

const NON_STREAM = Buffer.from(
  `{"model":"llama3.2","created_at":"${CREATED}","message":{"role":"assistant","content":"The sky is blue because of Rayleigh scattering."},"done":true,"done_reason":"stop","total_duration":486273703,"load_duration":23605102,"prompt_eval_count":37,"prompt_eval_duration":31290000,"eval_count":10,"eval_duration":128816000}`,
);
const TAGS = Buffer.from(
  '{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","modified_at":"2026-11-20T10:14:52.20459466-08:00","size":2019393189,"digest":"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72","details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"3.2B","quantization_level":"Q4_K_M"}}]}',
);

const cache = new Map<string, Buffer[]>();
function body(kind: 'ndjson' | 'sse', tokens: number): Buffer[] {
  const key = `${kind}:${tokens}`;
  let b = cache.get(key);
  if (!b) {
    b = kind === 'ndjson' ? ndjsonLines(tokens) : sseEvents(tokens);
    cache.set(key, b);
  }
  return b;
}

function stream(res: http.ServerResponse, pieces: Buffer[], contentType: string, delayMs: number): void {
  res.writeHead(200, { 'content-type': contentType });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i === pieces.length - 1) {
      res.end(pieces[i]);
      return;
    }
    res.write(pieces[i++]);
    if (delayMs > 0) setTimeout(next, delayMs);
    else setImmediate(next);
  };
  if (delayMs > 0) setTimeout(next, delayMs);
  else next();
}

const ignore = (): void => {};

const server = http.createServer((req, res) => {
  // The load generator closes its connections mid-response when a run ends: not an error here.
  req.on('error', ignore);
  res.on('error', ignore);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const tokens = Number(req.headers['x-bench-tokens'] ?? 32);
    const delay = Number(req.headers['x-bench-delay-ms'] ?? 0);
    if (req.method === 'GET' && req.url === '/api/tags') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': TAGS.length });
      res.end(TAGS);
      return;
    }
    if (req.method === 'POST' && req.url === '/api/chat') {
      const text = Buffer.concat(chunks).toString('latin1');
      if (text.includes('"stream":false')) {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': NON_STREAM.length });
        res.end(NON_STREAM);
        return;
      }
      stream(res, body('ndjson', tokens), 'application/x-ndjson', delay);
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/chat/completions') {
      stream(res, body('sse', tokens), 'text/event-stream', delay);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('404 page not found');
  });
});
server.keepAliveTimeout = 120_000;
server.listen(Number(process.argv[2]), '127.0.0.1');

// Accepts OTLP exports and drops them.
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  })
  .listen(Number(process.argv[3]), '127.0.0.1');
