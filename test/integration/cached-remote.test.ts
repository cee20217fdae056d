/**
 * Cached prompt tokens and remote (cloud) models through the real gateway process: the fake Ollama
 * serves the recorded answers of each API family (fixtures README §10.1, §10.2), and `/metrics`,
 * the spans an OTLP receiver gets and the console API must say exactly what those answers said.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeOllama, fixtureBehavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample } from '../helpers/gateway';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';
import { freePort, runGateway, type GatewayProcess } from '../helpers/process';
import { REPO } from '../helpers/tools';

const CACHED = 1184;
const LLAMA = 'llama3.2:latest';
const CLOUD = 'gpt-oss:120b-cloud';
/** Listed as remote by /api/tags only: its answers carry nothing that says so. */
const LISTED = 'mine:latest';

/** The recorded /api/tags with one more model, a remote one. */
function tagsWithRemote(): Buffer {
  const tags = JSON.parse(fixture('tags.json').toString('utf8')) as { models: Record<string, unknown>[] };
  tags.models.push({ name: LISTED, model: LISTED, size: 400, remote_model: 'big-model', remote_host: 'http://10.0.0.9:11434', details: {} });
  return Buffer.from(JSON.stringify(tags));
}

/** The sum of every series of `name` whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string>): number | undefined {
  let n: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) n = (n ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

describe('cached prompt tokens and remote models, end to end', () => {
  let fake: FakeOllama;
  let receiver: OtlpReceiver;
  let gw: GatewayProcess;
  let url: string;
  const traceIds = new Map<string, string>();

  /** Sends one call with its own trace, the fake answering with `file`; returns the answer's bytes. */
  async function call(name: string, path: string, body: Record<string, unknown>, file: string): Promise<string> {
    fake.next(fixtureBehavior(file));
    const traceId = Buffer.from(name.padEnd(16, '.').slice(0, 16)).toString('hex');
    traceIds.set(name, traceId);
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${'1'.repeat(16)}-01` },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, `${name}: ${path}`);
    return res.text();
  }

  async function spanOf(name: string, phases = false): Promise<{ llm: ReceivedSpan; spans: ReceivedSpan[] }> {
    const traceId = traceIds.get(name)!;
    return receiver.waitFor(() => {
      const spans = receiver.trace(traceId);
      const llm = spans.find((s) => s.attributes['gen_ai.operation.name'] && s.attributes['http.response.status_code'] !== undefined);
      if (!llm || (phases && !spans.some((s) => s.name === 'ollama.generation'))) return undefined;
      return { llm, spans };
    }, `trace of ${name}`);
  }

  before(async () => {
    fake = await new FakeOllama().start();
    receiver = await new OtlpReceiver().start();
    // The one poll at start lists the remote model; no later poll replaces it.
    fake.next({ kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: tagsWithRemote() }, '/api/tags');
    const port = await freePort();
    gw = runGateway({
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      OLLAMA_POLL_INTERVAL_SECONDS: '3600',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    await gw.waitFor('gateway listening');
    url = `http://127.0.0.1:${port}`;
    // The poll has been answered before the first call.
    await receiver.waitFor(() => (fake.last('/api/tags') ? true : undefined), 'the first poll');

    const chat = { messages: [{ role: 'user', content: 'And at sunset?' }] };
    await call('native', '/api/chat', { model: 'llama3.2', ...chat }, 'chat-stream-cached.ndjson');
    await call(
      'openai',
      '/v1/chat/completions',
      { model: 'llama3.2', ...chat, stream: true, stream_options: { include_usage: true } },
      'openai-chat-stream-cached.sse',
    );
    await call('responses', '/v1/responses', { model: 'llama3.2', input: 'Why?', stream: true }, 'openai-responses-stream-cached.sse');
    await call('anthropic', '/v1/messages', { model: 'llama3.2', max_tokens: 64, ...chat, stream: true }, 'anthropic-messages-stream-cached.sse');
    await call('old', '/api/chat', { model: 'qwen3:8b', ...chat }, 'chat-stream.ndjson');
    await call('cloud', '/api/chat', { model: CLOUD, ...chat }, 'chat-remote-stream.ndjson');
    // A cloud call on /v1 is the cloud's own bytes: nothing in them says remote, the poll does.
    await call('listed', '/v1/chat/completions', { model: 'mine', ...chat, stream: true, stream_options: { include_usage: true } }, 'openai-chat-stream.sse');
  });

  after(async () => {
    gw.child.kill('SIGTERM');
    await gw.exit;
    await receiver.close();
    await fake.close();
  });

  it('counts cached tokens per model, within the whole prompt, in every family; none for an Ollama without the field', async () => {
    const m = await metricsText(url);
    assert.equal(sample(m, 'ollama_tokens_cached_total', { model: LLAMA }), 4 * CACHED);
    // The whole prompt in every family: Anthropic's 19 uncached plus its 1184 cache reads.
    assert.equal(sample(m, 'ollama_tokens_processed_total', { model: LLAMA }), 1203 + 1196 + 1203 + (19 + CACHED));
    assert.equal(sample(m, 'ollama_tokens_cached_total', { model: 'qwen3:8b' }), undefined);
    assert.equal(sample(m, 'ollama_tokens_processed_total', { model: 'qwen3:8b' }), 37);
    assert.equal(total(m, 'gen_ai_client_inference_usage_cache_read_input_tokens_total', { gen_ai_request_model: LLAMA }), 4 * CACHED);
    assert.equal(total(m, 'gen_ai_client_inference_usage_cache_read_input_tokens_total', { gen_ai_request_model: 'qwen3:8b' }), undefined);
    // The dashboard's hit-ratio panel queries what is exported.
    const dashboard = readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8');
    assert.match(dashboard, /rate\(ollama_tokens_cached_total\{/);
    assert.match(m, /^# TYPE ollama_tokens_cached_total counter$/m);
  });

  it('labels remote models apart and keeps them out of the local GPU figures', async () => {
    const m = await metricsText(url);
    for (const model of [CLOUD, LISTED]) {
      assert.equal(sample(m, 'ollama_remote_requests_total', { model }), 1, model);
      assert.equal(total(m, 'ollama_requests_total', { model }), 1, model);
      for (const gpu of [
        'ollama_load_duration_seconds_count',
        'ollama_prompt_eval_duration_seconds_count',
        'ollama_eval_duration_seconds_count',
        'ollama_tokens_per_second_count',
      ]) {
        assert.equal(sample(m, gpu, { model }), undefined, `${gpu} of ${model}`);
      }
    }
    // Its tokens are tokens all the same.
    assert.equal(sample(m, 'ollama_tokens_processed_total', { model: CLOUD }), 82);
    assert.equal(sample(m, 'ollama_tokens_generated_total', { model: CLOUD }), 31);
    assert.equal(sample(m, 'ollama_remote_requests_total', { model: LLAMA }), undefined);
    assert.equal(sample(m, 'ollama_prompt_eval_duration_seconds_count', { model: LLAMA }), 1);
    assert.equal(sample(m, 'ollama_tokens_per_second_count', { model: LLAMA }), 4);
  });

  it('puts the cached tokens, the location and the remote host on the spans', async () => {
    for (const name of ['native', 'openai', 'responses', 'anthropic']) {
      const { llm } = await spanOf(name, name === 'native');
      assert.equal(llm.attributes['gen_ai.usage.cache_read.input_tokens'], CACHED, name);
      assert.equal(llm.attributes['ollama_gateway.location'], 'local', name);
    }
    assert.equal((await spanOf('anthropic')).llm.attributes['gen_ai.usage.input_tokens'], 19 + CACHED);
    assert.equal((await spanOf('old')).llm.attributes['gen_ai.usage.cache_read.input_tokens'], undefined);

    const cloud = await spanOf('cloud');
    assert.equal(cloud.llm.attributes['ollama_gateway.location'], 'remote');
    assert.equal(cloud.llm.attributes['ollama_gateway.remote.host'], 'https://ollama.com:443');
    assert.equal(cloud.llm.attributes['ollama_gateway.remote.model'], 'gpt-oss:120b');
    assert.deepEqual(
      cloud.spans.filter((s) => s.name.startsWith('ollama.')).map((s) => s.name),
      [],
      "no phase of this Ollama's GPU on a remote call",
    );
    const listed = await spanOf('listed');
    assert.equal(listed.llm.attributes['ollama_gateway.location'], 'remote');
    assert.equal(listed.llm.attributes['ollama_gateway.remote.host'], undefined);
  });

  it('shows cached tokens, the cache hit ratio, the prefill rate and remote models in the console API', async () => {
    const calls = (await (await fetch(`${url}/console/api/v1/calls`)).json()) as { calls: Record<string, unknown>[] };
    const byModel = (model: string) => calls.calls.filter((c) => c.model === model);
    assert.deepEqual(
      byModel(LLAMA).map((c) => c.cachedTokens),
      [CACHED, CACHED, CACHED, CACHED],
    );
    assert.deepEqual(
      byModel('qwen3:8b').map((c) => c.cachedTokens),
      [undefined],
    );
    const cloud = byModel(CLOUD)[0]!;
    assert.equal(cloud.remote, true);
    assert.equal(cloud.remoteHost, 'https://ollama.com:443');
    assert.equal(cloud.tokensPerSecond, undefined);
    assert.equal(cloud.phases, undefined);
    assert.equal(byModel(LISTED)[0]!.remote, true);
    assert.equal(byModel(LLAMA)[0]!.remote, undefined);

    type Row = { model: string; totals: Record<string, number>; window: Record<string, number | null> };
    const view = (await (await fetch(`${url}/console/api/v1/models?minutes=60`)).json()) as { models: Row[] };
    const llama = view.models.find((r) => r.model === LLAMA)!;
    assert.equal(llama.totals.cachedTokens, 4 * CACHED);
    assert.equal(llama.window.cachedTokens, 4 * CACHED);
    assert.equal(llama.window.cacheHitRatio, (4 * CACHED) / (1203 + 1196 + 1203 + 1203));
    // Only the native answer reports prompt_eval_duration: 19 evaluated tokens in 21.34 ms.
    assert.equal(llama.window.prefillTokensPerSecond, 19 / 0.02134);
    assert.equal(llama.totals.remoteRequests, 0);
    for (const model of [CLOUD, LISTED]) {
      const row = view.models.find((r) => r.model === model)!;
      assert.equal(row.totals.remoteRequests, 1, model);
      assert.equal(row.window.prefillTokensPerSecond, null, model);
      assert.equal(row.window.tokensPerSecondP50, null, model);
    }
    assert.equal(view.models.find((r) => r.model === 'qwen3:8b')!.window.cacheHitRatio, null, 'unknown, not 0, without the field');
  });
});
