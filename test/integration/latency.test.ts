/**
 * Latency as clients feel it, from a scripted fake Ollama with known delays: time to first token,
 * the gap between chunks, stalls, queueing, in-flight requests — and the GenAI convention metrics
 * taken from the same measurements.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const M = { model: 'llama3.2:latest' };
const STREAM = fixture('chat-stream.ndjson');
const LINES = STREAM.toString().trim().split('\n').length; // 31: 30 content lines and the final one
const TOTAL_DURATION_S = 0.486273703; // chat-stream.ndjson's total_duration

async function chat(url: string): Promise<void> {
  const res = await fetch(`${url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}' });
  await res.arrayBuffer();
}

function genAi(stack: TestStack, extra: Record<string, string> = {}): Record<string, string> {
  return {
    gen_ai_operation_name: 'chat',
    gen_ai_provider_name: 'ollama',
    gen_ai_request_model: 'llama3.2:latest',
    server_address: '127.0.0.1',
    server_port: String(stack.fake.port),
    ...extra,
  };
}

describe('latency metrics', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ STREAM_STALL_SECONDS: '0.15' });
  });
  after(() => stack.close());

  it('measures time to first token, one inter-token gap per chunk, and the queue time', async () => {
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: STREAM, delayMs: 300, gapMs: 25 });
    await chat(stack.url);
    const m = await metricsText(stack.url);

    const ttft = sample(m, 'ollama_time_to_first_token_seconds_sum', M)!;
    assert.ok(ttft >= 0.3 && ttft < 0.45, `time to first token ${ttft}s after a 300 ms delay`);
    assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);

    // 30 content chunks → 29 gaps, each about 25 ms.
    assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), LINES - 2);
    const gaps = sample(m, 'ollama_inter_token_seconds_sum', M)!;
    assert.ok(gaps > 0.02 * (LINES - 2) && gaps < 0.06 * (LINES - 2), `inter-token sum ${gaps}s`);
    assert.equal(sample(m, 'ollama_inter_token_seconds_bucket', { ...M, le: '0.01' }), 0);
    assert.equal(sample(m, 'ollama_stream_stalls_total', M), 0, 'no gap above 150 ms');

    // Queue = the gateway's wall time − Ollama's total_duration, from the same wall-time reading.
    const wall = sample(m, 'ollama_response_seconds_sum', { ...M, endpoint: '/api/chat' })!;
    assert.ok(wall > TOTAL_DURATION_S);
    assert.ok(Math.abs(sample(m, 'ollama_queue_seconds_sum', M)! - (wall - TOTAL_DURATION_S)) < 1e-9);
  });

  it('takes the GenAI metrics from the same measurements', async () => {
    const m = await metricsText(stack.url);
    const attrs = genAi(stack);
    assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_sum', attrs), sample(m, 'ollama_response_seconds_sum', { ...M, endpoint: '/api/chat' }));
    assert.equal(sample(m, 'gen_ai_server_time_to_first_token_seconds_sum', attrs), sample(m, 'ollama_time_to_first_token_seconds_sum', M));
    assert.equal(sample(m, 'gen_ai_client_token_usage_sum', { ...attrs, gen_ai_token_type: 'input' }), 37);
    assert.equal(sample(m, 'gen_ai_client_token_usage_sum', { ...attrs, gen_ai_token_type: 'output' }), 31);
    const tpot = sample(m, 'gen_ai_server_time_per_output_token_seconds_sum', attrs)!;
    assert.ok(Math.abs(tpot - 1 / sample(m, 'ollama_tokens_per_second_sum', M)!) < 1e-12);
    // The conventions' bucket boundaries.
    assert.notEqual(sample(m, 'gen_ai_client_operation_duration_seconds_bucket', { ...attrs, le: '81.92' }), undefined);
    assert.notEqual(sample(m, 'gen_ai_client_token_usage_bucket', { ...attrs, gen_ai_token_type: 'input', le: '67108864' }), undefined);
  });

  it('never reports a negative queue time', async () => {
    // Sent at once, the whole exchange takes far less than the 0.49 s Ollama claims.
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: STREAM, chunking: { kind: 'whole' } }, '/api/chat');
    const before = sample(await metricsText(stack.url), 'ollama_queue_seconds_sum', M)!;
    await chat(stack.url);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_queue_seconds_count', M), 2);
    assert.equal(sample(m, 'ollama_queue_seconds_sum', M), before);
  });

  it('counts a gap longer than STREAM_STALL_SECONDS as a stall', async () => {
    stack.fake.next({
      kind: 'stall',
      status: 200,
      contentType: 'application/x-ndjson',
      body: STREAM,
      bytes: STREAM.indexOf('\n', 500) + 1,
      resumeAfterMs: 300,
    });
    await chat(stack.url);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_stream_stalls_total', M), 1);
    assert.ok((sample(m, 'ollama_inter_token_seconds_bucket', { ...M, le: '0.25' }) ?? 0) < (sample(m, 'ollama_inter_token_seconds_count', M) ?? 0));
  });

  it('counts a stream in flight until its last byte', async () => {
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: STREAM, gapMs: 20 });
    const done = chat(stack.url);
    await new Promise((r) => setTimeout(r, 200));
    const during = await metricsText(stack.url);
    assert.equal(sample(during, 'ollama_requests_in_flight', { ...M, endpoint: '/api/chat' }), 1);
    await done;
    const afterwards = await metricsText(stack.url);
    assert.equal(sample(afterwards, 'ollama_requests_in_flight', { ...M, endpoint: '/api/chat' }), 0);
  });
});

describe('METRIC_FAMILIES', () => {
  it('exports only the gen_ai family when asked', async () => {
    const stack = await startStack({ METRIC_FAMILIES: 'gen_ai' });
    try {
      await chat(stack.url);
      const m = await metricsText(stack.url);
      assert.ok(!/^ollama_/m.test(m), 'no ollama_* series');
      assert.equal(sample(m, 'gen_ai_client_token_usage_sum', genAi(stack, { gen_ai_token_type: 'output' })), 31);
    } finally {
      await stack.close();
    }
  });

  it('exports only the ollama family when asked', async () => {
    const stack = await startStack({ METRIC_FAMILIES: 'ollama' });
    try {
      await chat(stack.url);
      const m = await metricsText(stack.url);
      assert.ok(!/^gen_ai_/m.test(m), 'no gen_ai_* series');
      assert.equal(sample(m, 'ollama_tokens_generated_total', M), 31);
    } finally {
      await stack.close();
    }
  });
});
