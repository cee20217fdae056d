/**
 * Property-based tests of the stream tap through the running gateway: for any stream and any way
 * Ollama's writes cut it, the client receives exactly the bytes Ollama sent; arbitrary bytes are
 * forwarded unchanged, the gateway never crashes, and the request is still counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

async function post(url: string, path: string, body: string): Promise<Buffer> {
  const res = await fetch(url + path, { method: 'POST', body });
  return Buffer.from(await res.arrayBuffer());
}

describe('stream tap properties (through the gateway)', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ LOG_LEVEL: 'ERROR' });
  });
  after(() => stack.close());

  it("forwards any NDJSON or SSE stream byte for byte, however Ollama's writes cut it", async () => {
    const words = fc.array(fc.string({ unit: 'grapheme', maxLength: 8 }), { maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(words, fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), async (ws, offsets, sse) => {
        const body = sse
          ? Buffer.from(
              ws.map((w) => `data: {"choices":[{"index":0,"delta":{"content":${JSON.stringify(w)}},"finish_reason":null}]}\n\n`).join('') + 'data: [DONE]\n\n',
            )
          : Buffer.from(
              ws.map((w) => JSON.stringify({ model: 'llama3.2', message: { role: 'assistant', content: w }, done: false }) + '\n').join('') +
                '{"model":"llama3.2","done":true,"eval_count":1}\n',
            );
        stack.fake.next({
          kind: 'body',
          status: 200,
          contentType: sse ? 'text/event-stream' : 'application/x-ndjson',
          body,
          chunking: { kind: 'at', offsets: offsets.map((o) => o % (body.length + 1)) },
        });
        // include_usage set, so the SSE stream passes untouched.
        const got = await post(
          stack.url,
          sse ? '/v1/chat/completions' : '/api/chat',
          sse ? '{"model":"llama3.2","stream":true,"stream_options":{"include_usage":true}}' : '{"model":"llama3.2"}',
        );
        assert.deepEqual(got, body);
      }),
      { numRuns: 40 },
    );
  });

  it('forwards arbitrary bytes unchanged under any content type, counts every request, and keeps serving', async () => {
    const types = fc.constantFrom('application/x-ndjson', 'text/event-stream', 'application/json', 'text/plain');
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }), types, async (bytes, offsets, contentType) => {
        const body = Buffer.from(bytes);
        stack.fake.next({ kind: 'body', status: 200, contentType, body, chunking: { kind: 'at', offsets: offsets.map((o) => o % (body.length + 1)) } });
        sent++;
        assert.deepEqual(await post(stack.url, '/api/generate', '{"model":"llama3.2","prompt":"x","stream":true}'), body);
      }),
      { numRuns: 40 },
    );
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/generate', status: '200' }), sent);
    const health = await fetch(`${stack.url}/healthz`);
    assert.equal(health.status, 200);
  });
});
