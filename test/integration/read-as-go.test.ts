/**
 * The gateway meters the call Ollama runs, read as Ollama's Go decoder reads the body: the
 * bypasses a client could use to run one thing and be metered for another, each through the real
 * gateway and a fake Ollama that reads bodies as Go does; and a deeply nested first message that
 * once killed the process through the affinity key (ROUTING_AFFINITY=prefix, two backends).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { freePort, runGateway } from '../helpers/process';

const M = { model: 'llama3.2:latest' };

async function post(url: string, path: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, text: await res.text() };
}

describe('a body read as Ollama reads it', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  /** The OpenAI chat stream's token counts recorded so far. */
  const tokens = async () => {
    const m = await metricsText(stack.url);
    return { in: sample(m, 'ollama_tokens_processed_total', M) ?? 0, out: sample(m, 'ollama_tokens_generated_total', M) ?? 0 };
  };

  /** Posts a streamed chat the client asked no usage for (as Go reads it): tokens are counted, no usage reaches the client. */
  async function meteredWithoutUsage(body: string): Promise<void> {
    const before = await tokens();
    const res = await post(stack.url, '/v1/chat/completions', body);
    assert.equal(res.status, 200);
    assert.match(res.text, /data: \[DONE\]/);
    assert.doesNotMatch(res.text, /"usage"/, 'the client did not ask for usage and sees none');
    const after = await tokens();
    assert.deepEqual({ in: after.in - before.in, out: after.out - before.out }, { in: 30, out: 6 }, body);
  }

  it('counts the tokens of a stream whose include_usage has a case twin that Go applies last', async () => {
    await meteredWithoutUsage(
      '{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true,"Include_Usage":false}}',
    );
  });

  it('counts the tokens of a stream whose stream_options is spelled STREAM_OPTIONS', async () => {
    await meteredWithoutUsage('{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"hi"}],"STREAM_OPTIONS":{"INCLUDE_USAGE":false}}');
  });

  it('streams, and counts, a call whose stream flag is spelled with a long s', async () => {
    const streams = async () => sample(await metricsText(stack.url), 'ollama_tokens_per_second_count', M) ?? 0;
    const before = await streams();
    await meteredWithoutUsage('{"model":"llama3.2","ſtream":true,"messages":[{"role":"user","content":"hi"}]}');
    assert.equal((await streams()) - before, 1, 'measured as a stream');
  });

  it('reads the model of a body followed by other bytes, as Go reads the first value only', async () => {
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]} trailing');
    assert.equal(res.status, 200);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'unknown', endpoint: '/api/chat', status: '200' }), undefined);
  });

  it('bills a duplicated model to the one Go applies last, not to a case twin in between', async () => {
    const res = await post(stack.url, '/api/generate', '{"model":"llama3.2","Model":"qwen3:8b","model":"llama3.2","prompt":"hi","stream":false}');
    assert.equal(res.status, 200);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/generate', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'qwen3:8b', endpoint: '/api/generate', status: '200' }), undefined);
  });

  it("meters no model for a body Go refuses, and counts Ollama's 400", async () => {
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","stream":"yes","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(res.status, 400);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'unknown', endpoint: '/api/chat', status: '400' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/api/chat', status: '400' }), undefined);
  });
});

describe('the affinity key of a deeply nested first message', () => {
  it('leaves the process up with ROUTING_AFFINITY=prefix and two backends', { timeout: 30_000 }, async () => {
    const models = { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] };
    const fakes = await Promise.all([0, 1].map(async () => Object.assign(await new FakeOllama().start(), { models })));
    const port = await freePort();
    const p = runGateway({
      OLLAMA_HOST: fakes.map((f) => f.origin).join(','),
      ROUTING_AFFINITY: 'prefix',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'INFO',
      OLLAMA_POLL_INTERVAL_SECONDS: '600',
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await p.waitFor('gateway listening', 10_000);
      const deep = '['.repeat(7_000) + ']'.repeat(7_000);
      // Ollama's chat content is a string (Go refuses the body); OpenAI's is any JSON (Go reads it).
      const bodies: [string, string][] = [
        ['/api/chat', `{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":${deep}}]}`],
        ['/v1/chat/completions', `{"model":"llama3.2","messages":[{"role":"user","content":${deep}}]}`],
        ['/v1/chat/completions', `{"model":"llama3.2","messages":[{"role":"user","content":${deep}}]}`],
      ];
      for (const [path, body] of bodies) {
        const res = await fetch(url + path, { method: 'POST', body, signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        assert.ok(res.status === 200 || res.status === 400, `${path}: ${res.status}`);
      }
      assert.equal(p.child.exitCode, null, `the process exited: ${p.stderr}`);
      const ok = await fetch(`${url}/api/chat`, {
        method: 'POST',
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
      // The nested OpenAI conversation was keyed (its second turn stayed where the first went).
      const m = await (await fetch(`${url}/metrics`)).text();
      assert.match(m, /ollama_routing_decisions_total\{[^}]*reason="affinity"[^}]*\} 1/);
    } finally {
      p.child.kill('SIGKILL');
      await p.exit;
      await Promise.all(fakes.map((f) => f.close().catch(() => {})));
    }
  });
});
