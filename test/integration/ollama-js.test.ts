/**
 * The gateway driven by ollama-js, the client most Ollama users have: what the client receives, and
 * the exact metric values that result.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ollama } from 'ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const M = { model: 'llama3.2:latest' };

function finalLine(file: string): Record<string, number> {
  const lines = fixture(file).toString('utf8').trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Record<string, number>;
}

describe('ollama-js through the gateway', () => {
  let stack: TestStack;
  let client: Ollama;
  before(async () => {
    stack = await startStack();
    client = new Ollama({ host: stack.url });
  });
  after(() => stack.close());

  it("streams a chat, and the metrics hold the final line's statistics", async () => {
    const before = await metricsText(stack.url);
    assert.equal(sample(before, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '200' }), undefined);

    let text = '';
    let last: Record<string, unknown> = {};
    for await (const part of await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true })) {
      text += part.message.content;
      last = part as unknown as Record<string, unknown>;
    }
    const expectedText = fixture('chat-stream.ndjson')
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { message: { content: string } }).message.content)
      .join('');
    assert.equal(text, expectedText);
    assert.equal(last.done, true);
    assert.equal(last.eval_count, 31);

    const stats = finalLine('chat-stream.ndjson');
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', M), stats.prompt_eval_count);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), stats.eval_count);
    assert.equal(sample(m, 'ollama_load_duration_seconds_sum', M), stats.load_duration / 1e9);
    assert.equal(sample(m, 'ollama_prompt_eval_duration_seconds_sum', M), stats.prompt_eval_duration / 1e9);
    assert.equal(sample(m, 'ollama_eval_duration_seconds_sum', M), stats.eval_duration / 1e9);
    const tps = (stats.eval_count * 1e9) / stats.eval_duration; // 72.3 tokens/s
    assert.ok(Math.abs((sample(m, 'ollama_tokens_per_second_sum', M) ?? 0) - tps) < 1e-9);
    assert.equal(sample(m, 'ollama_tokens_per_second_bucket', { ...M, le: '50' }), 0);
    assert.equal(sample(m, 'ollama_tokens_per_second_bucket', { ...M, le: '75' }), 1);
    assert.equal(sample(m, 'ollama_response_seconds_count', { ...M, endpoint: '/api/chat' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: '/api/chat', reason: 'stream_error' }) ?? 0, 0);
  });

  it('answers a non-streamed generate and counts it under the same model', async () => {
    const res = await client.generate({ model: 'llama3.2:latest', prompt: 'Write a haiku about autumn leaves.' });
    const expected = JSON.parse(fixture('generate-nostream.json').toString('utf8')) as Record<string, unknown>;
    assert.equal(res.response, expected.response);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/generate', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), 31 + (expected.eval_count as number));
  });

  it('streams a generate and receives every token', async () => {
    let n = 0;
    let done = false;
    for await (const part of await client.generate({ model: 'llama3.2', prompt: 'Write a haiku about autumn leaves.', stream: true })) {
      n++;
      done = part.done;
    }
    assert.equal(n, fixture('generate-stream.ndjson').toString('utf8').trim().split('\n').length);
    assert.equal(done, true);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/generate', status: '200' }), 2);
  });

  it('embeds, counting input tokens for the embedding model', async () => {
    const res = await client.embed({ model: 'all-minilm', input: ['Why is the sky blue?', 'Why is the grass green?'] });
    assert.equal(res.embeddings.length, 2);
    const m = await metricsText(stack.url);
    const E = { model: 'all-minilm:latest' };
    assert.equal(sample(m, 'ollama_requests_total', { ...E, endpoint: '/api/embed', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', E), 16);
    assert.equal(sample(m, 'ollama_tokens_generated_total', E), undefined);
    assert.equal(sample(m, 'ollama_tokens_per_second_count', E), undefined);
  });

  it("passes an unknown model's 404 through as ollama-js expects it, and counts it", async () => {
    await assert.rejects(
      client.chat({ model: 'llama3.3', messages: [{ role: 'user', content: 'Hello' }], stream: true }),
      (err: Error & { status_code?: number }) => err.message === "model 'llama3.3' not found" && err.status_code === 404,
    );
    const m = await metricsText(stack.url);
    const L = { model: 'llama3.3:latest', endpoint: '/api/chat' };
    assert.equal(sample(m, 'ollama_requests_total', { ...L, status: '404' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...L, reason: 'upstream_4xx' }), 1);
  });

  it('reaches the pass-through endpoints (list, ps, show, version, pull)', async () => {
    assert.equal((await client.list()).models.length, JSON.parse(fixture('tags.json').toString()).models.length);
    assert.equal((await client.ps()).models.length, JSON.parse(fixture('ps.json').toString()).models.length);
    assert.ok((await client.show({ model: 'llama3.2' })).modelfile.length > 0);
    assert.equal((await client.version()).version, '0.32.15');
    const statuses: string[] = [];
    for await (const p of await client.pull({ model: 'llama3.2', stream: true })) statuses.push(p.status);
    assert.equal(statuses[statuses.length - 1], 'success');
    // Pass-through calls are not LLM calls: no requests counted for them.
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/pull', status: '200' }), undefined);
  });
});
