/**
 * Embedding answers far over the 8 MiB inspection cap, through the in-process gateway: the client
 * receives every byte, and the call's tokens are counted; a big answer without statistics is counted
 * as a stream error, not missed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const MiB = 1024 * 1024;
const E = { model: 'all-minilm:latest' };
const JSON_TYPE = 'application/json; charset=utf-8';

/** An answer of at least `bytes` bytes: `open`, then embedding rows, then `close`. */
function bigBody(bytes: number, open: string, item: (row: string, i: number) => string, close: string): Buffer {
  const v: string[] = [];
  for (let i = 0; i < 384; i++) v.push(String(Number((Math.cos(i) * 0.1).toPrecision(8))));
  const row = '[' + v.join(',') + ']';
  const items: string[] = [];
  for (let size = 0, i = 0; size < bytes; i++) {
    const it = item(row, i);
    items.push(it);
    size += it.length + 1;
  }
  return Buffer.from(open + items.join(',') + close);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function post(url: string, path: string, body: unknown): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('embedding answers over the inspection cap', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  it('counts the tokens of a 20 MB /api/embed answer and relays it unchanged', async () => {
    const body = bigBody(
      20 * MiB,
      '{"model":"all-minilm","embeddings":[',
      (row) => row,
      '],"total_duration":2914000123,"load_duration":1019500,"prompt_eval_count":81920}',
    );
    stack.fake.next({ kind: 'body', status: 200, contentType: JSON_TYPE, body, chunking: { kind: 'every', size: 64 * 1024 } }, '/api/embed');
    const res = await post(stack.url, '/api/embed', { model: 'all-minilm', input: ['a', 'b'] });
    assert.equal(res.status, 200);
    assert.equal(res.bytes.length, body.length);
    assert.equal(sha(res.bytes), sha(body));

    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...E, endpoint: '/api/embed', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', E), 81920);
    assert.equal(sample(m, 'ollama_load_duration_seconds_sum', E), 1019500 / 1e9);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...E, endpoint: '/api/embed', reason: 'stream_error' }) ?? 0, 0);
  });

  it('counts the usage of a 20 MB /v1/embeddings answer, whose model and usage come after the data', async () => {
    const body = bigBody(
      20 * MiB,
      '{"object":"list","data":[',
      (row, i) => `{"object":"embedding","embedding":${row},"index":${i}}`,
      '],"model":"all-minilm","usage":{"prompt_tokens":4096,"total_tokens":4096}}',
    );
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/json', body, chunking: { kind: 'every', size: 64 * 1024 } }, '/v1/embeddings');
    const res = await post(stack.url, '/v1/embeddings', { model: 'all-minilm', input: ['a'], encoding_format: 'float' });
    assert.equal(res.status, 200);
    assert.equal(sha(res.bytes), sha(body));
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...E, endpoint: '/v1/embeddings', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', E), 81920 + 4096);
  });

  it('counts a 20 MB answer without statistics as a stream error instead of missing it', async () => {
    const body = bigBody(20 * MiB, '{"model":"all-minilm","embeddings":[', (row) => row, ']}');
    stack.fake.next({ kind: 'body', status: 200, contentType: JSON_TYPE, body, chunking: { kind: 'every', size: 64 * 1024 } }, '/api/embed');
    const res = await post(stack.url, '/api/embed', { model: 'all-minilm', input: 'c' });
    assert.equal(res.status, 200);
    assert.equal(sha(res.bytes), sha(body));
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...E, endpoint: '/api/embed', reason: 'stream_error' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', E), 81920 + 4096);
  });
});
