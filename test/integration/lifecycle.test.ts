/**
 * Model lifecycle calls are not generations: `/api/generate` without a prompt and `/api/chat`
 * without messages load the model (with `keep_alive` 0, unload it). They are counted in
 * `ollama_model_loads_total` / `ollama_model_unloads_total`, a load's wall time in
 * `ollama_load_duration_seconds`, and in none of the request-level or GenAI operation metrics;
 * a lifecycle call that fails is a failed request like any other. Their spans are `load_model` /
 * `unload_model`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FakeOllama, fixtureBehavior } from '../helpers/fake-ollama';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { OtlpReceiver } from '../helpers/otlp-receiver';
import { freePort, runGateway } from '../helpers/process';

const M = { model: 'llama3.2:latest' };

async function post(stack: TestStack, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${stack.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text.trim().split('\n').pop() ?? '{}') as Record<string, unknown> };
}

/** Runs `fn` against a fresh gateway and fake Ollama. */
async function withStack(fn: (stack: TestStack) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const stack = await startStack(env);
  try {
    await fn(stack);
  } finally {
    await stack.close();
  }
}

/** Asserts that no request-level or GenAI operation metric has a series for the model. */
function assertNoRequestSeries(m: string, model = M.model): void {
  for (const name of [
    'ollama_requests_total',
    'ollama_request_errors_total',
    'ollama_response_seconds_count',
    'ollama_requests_in_flight',
    'ollama_time_to_first_token_seconds_count',
    'ollama_tokens_per_second_count',
    'ollama_queue_seconds_count',
    'gen_ai_client_operation_duration_seconds_count',
    'gen_ai_client_token_usage_count',
  ]) {
    const series = m.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes(`model="${model}"`));
    assert.deepEqual(series, [], `${name} has no series for ${model}`);
    const genAi = m.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes(`gen_ai_request_model="${model}"`));
    assert.deepEqual(genAi, [], `${name} has no GenAI series for ${model}`);
  }
}

describe('model loads and unloads', () => {
  it('counts /api/generate without a prompt as a load, with its wall time as the load time', () =>
    withStack(async (stack) => {
      const slow = fixtureBehavior('generate-load.json');
      if (slow.kind === 'body') slow.delayMs = 200; // loading the model
      stack.fake.next(slow, '/api/generate');
      const r = await post(stack, '/api/generate', { model: 'llama3.2' });
      assert.equal(r.status, 200);
      assert.equal(r.json.done_reason, 'load');
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_model_loads_total', M), 1);
      assert.equal(sample(m, 'ollama_model_unloads_total', M), 0);
      assert.equal(sample(m, 'ollama_load_duration_seconds_count', M), 1);
      const load = sample(m, 'ollama_load_duration_seconds_sum', M)!;
      assert.ok(load >= 0.2 && load < 1, `load took ${load}s behind a 200 ms delay`);
      assertNoRequestSeries(m);
    }));

  it('counts /api/chat with messages [] as a load', () =>
    withStack(async (stack) => {
      const r = await post(stack, '/api/chat', { model: 'llama3.2', messages: [] });
      assert.equal(r.json.done_reason, 'load');
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_model_loads_total', M), 1);
      assert.equal(sample(m, 'ollama_model_unloads_total', M), 0);
      assert.equal(sample(m, 'ollama_load_duration_seconds_count', M), 1);
      assertNoRequestSeries(m);
    }));

  it('counts keep_alive 0 as an unload, on both endpoints, with no load time', () =>
    withStack(async (stack) => {
      const g = await post(stack, '/api/generate', { model: 'llama3.2', keep_alive: 0 });
      assert.equal(g.json.done_reason, 'unload');
      const c = await post(stack, '/api/chat', { model: 'llama3.2', messages: [], keep_alive: '0s' });
      assert.equal(c.json.done_reason, 'unload');
      const c2 = await post(stack, '/api/chat', { model: 'llama3.2', messages: [], keep_alive: '0m' });
      assert.equal(c2.json.done_reason, 'unload');
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_model_unloads_total', M), 3);
      assert.equal(sample(m, 'ollama_model_loads_total', M), 0);
      assert.equal(sample(m, 'ollama_load_duration_seconds_count', M), undefined);
      assertNoRequestSeries(m);
    }));

  it('does not count a generation as a load', () =>
    withStack(async (stack) => {
      await post(stack, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false });
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'haiku', keep_alive: 0 });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_model_loads_total', M), 0);
      assert.equal(sample(m, 'ollama_model_unloads_total', M), 0);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '200' }), 1);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/generate', status: '200' }), 1);
      // The load_duration Ollama reported on the two generations.
      assert.equal(sample(m, 'ollama_load_duration_seconds_count', M), 2);
    }));

  it("lets the answer's done_reason overrule the request", () =>
    withStack(async (stack) => {
      // No messages, but this Ollama generated an answer ("stop"): a chat after all.
      stack.fake.next(fixtureBehavior('chat-nostream.json'), '/api/chat');
      await post(stack, '/api/chat', { model: 'llama3.2', stream: false });
      // A prompt, but the answer says "load".
      stack.fake.next(fixtureBehavior('generate-load.json'), '/api/generate');
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'hi' });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '200' }), 1);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/generate', status: '200' }), undefined);
      assert.equal(sample(m, 'ollama_model_loads_total', M), 1);
      assert.equal(sample(m, 'ollama_requests_in_flight', { ...M, endpoint: '/api/generate' }), 0, 'in flight went up and down once');
    }));

  it('counts a failed load as a failed request, not as a load', () =>
    withStack(async (stack) => {
      const r = await post(stack, '/api/generate', { model: 'llama3.3' });
      assert.equal(r.status, 404);
      const r2 = await post(stack, '/api/chat', { model: 'llama3.3', messages: [], keep_alive: 0 });
      assert.equal(r2.status, 404);
      const m = await metricsText(stack.url);
      const L = { model: 'llama3.3:latest' };
      assert.equal(sample(m, 'ollama_requests_total', { ...L, endpoint: '/api/generate', status: '404' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...L, endpoint: '/api/generate', reason: 'upstream_4xx' }), 1);
      assert.equal(sample(m, 'ollama_requests_total', { ...L, endpoint: '/api/chat', status: '404' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...L, endpoint: '/api/chat', reason: 'upstream_4xx' }), 1);
      // A name Ollama does not serve has its counts and no histogram.
      assert.equal(sample(m, 'ollama_response_seconds_count', { ...L, endpoint: '/api/generate' }), undefined);
      assert.equal(sample(m, 'ollama_model_loads_total', L), undefined, 'nor per-model counters');
      assert.equal(sample(m, 'ollama_model_unloads_total', L), undefined);
      assert.equal(sample(m, 'ollama_load_duration_seconds_count', L), undefined);
      assert.equal(sample(m, 'ollama_requests_in_flight', { ...L, endpoint: '/api/generate' }), undefined, 'never in flight');
      assert.ok(!/^gen_ai_client_operation_duration_count\{.*llama3\.3/m.test(m), 'no GenAI operation metric');
    }));
});

describe('load and unload spans', () => {
  it('are named load_model <model> and unload_model <model>', async () => {
    const fake = await new FakeOllama().start();
    const receiver = await new OtlpReceiver().start();
    const port = await freePort();
    const p = runGateway({
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    try {
      await p.waitFor('gateway listening');
      const call = async (path: string, body: unknown): Promise<string> => {
        const traceId = randomBytes(16).toString('hex');
        const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { traceparent }, body: JSON.stringify(body) });
        await res.text();
        return traceId;
      };
      const genAiSpan = (traceId: string) =>
        receiver.waitFor(() => receiver.trace(traceId).find((s) => s.attributes['gen_ai.operation.name'] !== undefined), `trace ${traceId}`);

      const load = await genAiSpan(await call('/api/generate', { model: 'llama3.2' }));
      assert.equal(load.name, 'load_model llama3.2');
      assert.equal(load.attributes['gen_ai.operation.name'], 'load_model');
      assert.deepEqual(load.attributes['gen_ai.response.finish_reasons'], ['load']);
      const unload = await genAiSpan(await call('/api/chat', { model: 'llama3.2', messages: [], keep_alive: 0 }));
      assert.equal(unload.name, 'unload_model llama3.2');
      assert.equal(unload.attributes['gen_ai.operation.name'], 'unload_model');
      // A chat without messages that Ollama answered with a generation keeps its chat name.
      fake.next(fixtureBehavior('chat-nostream.json'), '/api/chat');
      const chat = await genAiSpan(await call('/api/chat', { model: 'llama3.2', stream: false }));
      assert.equal(chat.name, 'chat llama3.2');
      assert.equal(chat.attributes['gen_ai.operation.name'], 'chat');
    } finally {
      p.child.kill('SIGTERM');
      await p.exit;
      await receiver.close();
      await fake.close();
    }
  });
});
