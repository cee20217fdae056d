/**
 * The `/metrics` exposition: exact names and types, buckets that resolve real values, Prometheus's
 * own linter, and a real Prometheus scraping it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ollama } from 'ollama';
import { DURATION_BUCKETS_SECONDS, TOKENS_PER_SECOND_BUCKETS } from '../../otel/instruments';
import { fixtureBehavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { freePort } from '../helpers/process';
import { dashboardQueries, REPO, requireTool } from '../helpers/tools';

/** The metrics a gateway with one backend does not export (fleet.test.ts checks them). */
const FLEET_ONLY = new Set([
  'ollama_backend_in_flight',
  'ollama_backend_healthy',
  'ollama_routing_decisions_total',
  'ollama_backend_failovers_total',
  'ollama_cold_loads_total',
]);

/** Exported once an Ollama reports cached prompt tokens, which these fixtures do not (cached-remote.test.ts checks it). */
const CACHED_ONLY = new Set(['ollama_tokens_cached_total']);

/** Exported once a tenant has limits (budgets.test.ts checks them). */
const BUDGETS_ONLY = new Set(['ollama_gateway_budget_remaining', 'ollama_gateway_budget_limit']);

async function traffic(stack: TestStack): Promise<void> {
  const client = new Ollama({ host: stack.url });
  for await (const _ of await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true })) void _;
  await client.generate({ model: 'llama3.2', prompt: 'haiku' });
  await client.embed({ model: 'all-minilm', input: 'sky' });
  await client.chat({ model: 'qwen3:8b', messages: [{ role: 'user', content: '17*23' }], stream: false, think: true }).catch(() => {});
  stack.fake.next(fixtureBehavior('error-midstream.ndjson'));
  await (await fetch(`${stack.url}/api/generate`, { method: 'POST', body: '{"model":"llama3.2","prompt":"story"}' })).text();
  await client.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }).catch(() => {});
  await (await fetch(`${stack.url}/api/chat`, { method: 'POST', body: 'not json "quoted" \\ label' })).text();
  const stream = fixture('chat-stream.ndjson');
  stack.fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: stream, bytes: stream.indexOf('\n', 300) + 1, resumeAfterMs: 120 });
  await (await fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}' })).text();
  await stack.gw.poller!.pollNow();
}

describe('/metrics', () => {
  let stack: TestStack;
  let text: string;
  before(async () => {
    // The fair queue on (it is off by default), so its families are exported too.
    stack = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '3600', STREAM_STALL_SECONDS: '0.05', BACKEND_PARALLEL: '4' });
    await traffic(stack);
    text = await metricsText(stack.url);
  });
  after(() => stack.close());

  it('serves the Prometheus text format', async () => {
    const res = await fetch(`${stack.url}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    await res.text();
  });

  it('exposes exactly the documented metric families, with their types', () => {
    const types = Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.deepEqual(types, {
      target_info: 'gauge',
      ollama_requests_total: 'counter',
      ollama_request_errors_total: 'counter',
      ollama_response_seconds: 'histogram',
      ollama_load_duration_seconds: 'histogram',
      ollama_prompt_eval_duration_seconds: 'histogram',
      ollama_eval_duration_seconds: 'histogram',
      ollama_tokens_per_second: 'histogram',
      ollama_tokens_processed_total: 'counter',
      ollama_tokens_generated_total: 'counter',
      ollama_requests_in_flight: 'gauge',
      ollama_time_to_first_token_seconds: 'histogram',
      ollama_inter_token_seconds: 'histogram',
      ollama_stream_stalls_total: 'counter',
      ollama_queue_seconds: 'histogram',
      ollama_time_to_first_answer_seconds: 'histogram',
      ollama_model_loads_total: 'counter',
      ollama_model_unloads_total: 'counter',
      ollama_context_used_ratio: 'histogram',
      ollama_context_limit_hits_total: 'counter',
      ollama_generation_truncated_total: 'counter',
      ollama_gateway_buffered_body_bytes: 'gauge',
      ollama_gateway_queue_wait_seconds: 'histogram',
      ollama_gateway_queue_waiting: 'gauge',
      ollama_tenant_requests_total: 'counter',
      ollama_tenant_tokens_total: 'counter',
      ollama_tenant_gpu_seconds_total: 'counter',
      ollama_tenant_gpu_seconds_estimated_total: 'counter',
      ollama_tenant_model_loads_total: 'counter',
      ollama_tenant_option_reloads_total: 'counter',
      ollama_gateway_log_lines_dropped_total: 'counter',
      gen_ai_client_operation_duration_seconds: 'histogram',
      gen_ai_client_token_usage: 'histogram',
      gen_ai_server_time_to_first_token_seconds: 'histogram',
      gen_ai_server_time_per_output_token_seconds: 'histogram',
      ollama_up: 'gauge',
      ollama_build_info: 'gauge',
      ollama_models_available: 'gauge',
      ollama_models_available_bytes: 'gauge',
      ollama_models_loaded: 'gauge',
      ollama_model_loaded_bytes: 'gauge',
      ollama_model_vram_bytes: 'gauge',
      ollama_model_vram_ratio: 'gauge',
      ollama_model_unload_seconds: 'gauge',
    });
  });

  it('uses buckets that resolve durations to 20 minutes and 1 to 2,000 tokens per second', () => {
    const les = (name: string) => [...text.matchAll(new RegExp(`^${name}_bucket\\{model="llama3.2:latest",le="([^"]+)"\\}`, 'gm'))].map((m) => m[1]);
    assert.deepEqual(les('ollama_tokens_per_second'), [...TOKENS_PER_SECOND_BUCKETS.map(String), '+Inf']);
    assert.deepEqual(les('ollama_load_duration_seconds'), [...DURATION_BUCKETS_SECONDS.map(String), '+Inf']);
    // The chat stream's 72 tokens/s lands in a finite bucket, not +Inf.
    assert.equal(
      sample(text, 'ollama_tokens_per_second_bucket', { model: 'llama3.2:latest', le: '75' }),
      sample(text, 'ollama_tokens_per_second_count', { model: 'llama3.2:latest' }),
    );
  });

  it('has every metric the dashboard and the alert rules query (with one backend)', () => {
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const dashboard = JSON.parse(readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8'));
    const exprs = [...dashboardQueries(dashboard).map((q) => q.expr), readFileSync(path.join(REPO, 'prometheus', 'alerts.yml'), 'utf8')];
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:ollama|gen_ai)_[a-z_]+)\b/g)].map((m) => m[1].replace(/_(bucket|sum|count)$/, ''))));
    assert.ok(used.size > 15);
    // Exported only with several backends: checked against such a gateway in fleet.test.ts.
    for (const name of used)
      if (!FLEET_ONLY.has(name) && !CACHED_ONLY.has(name) && !BUDGETS_ONLY.has(name)) assert.ok(families.has(name), `${name} is queried but not exported`);
  });

  it('passes promtool check metrics', (t) => {
    const skip = requireTool('promtool');
    if (skip) return t.skip(skip);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  });

  it("is scraped by a real Prometheus with the README's scrape config", async (t) => {
    const skip = requireTool('prometheus');
    if (skip) return t.skip(skip);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'prom-'));
    const promPort = await freePort();
    // The README's snippet, pointed at this test's gateway and scraped every second.
    const snippet = readFileSync(path.join(REPO, 'prometheus', 'prometheus.yml'), 'utf8')
      .replace(/scrape_interval: \S+/g, 'scrape_interval: 1s')
      .replace(/targets: \[[^\]]*\]/, `targets: ['127.0.0.1:${stack.gw.port}']`);
    writeFileSync(path.join(dir, 'prometheus.yml'), snippet);
    writeFileSync(path.join(dir, 'alerts.yml'), readFileSync(path.join(REPO, 'prometheus', 'alerts.yml')));
    const prom = spawn(
      'prometheus',
      [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`],
      { stdio: 'ignore' },
    );
    try {
      const query = async (q: string) => {
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
        return ((await res.json()) as { data: { result: { value: [number, string] }[] } }).data.result;
      };
      const until = Date.now() + 20_000;
      let result: { value: [number, string] }[] = [];
      while (Date.now() < until) {
        try {
          result = await query('sum by (model) (ollama_tokens_generated_total{model="llama3.2:latest"})');
          if (result.length > 0) break;
        } catch {
          /* not up yet */
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(result.length, 1, 'Prometheus never scraped the gateway');
      assert.equal(Number(result[0].value[1]), sample(text, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }));
      const up = await query('up{job="ollama-otel-gateway"}');
      assert.equal(up[0]?.value[1], '1');

      // The alert rules load, and every dashboard query evaluates without error.
      const rules = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string }[] }[] };
      };
      const loaded = rules.data.groups.flatMap((g) => g.rules);
      assert.equal(loaded.length, 10);
      const dashboard = JSON.parse(readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8'));
      for (const q of dashboardQueries(dashboard)) {
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q.expr)}`);
        const body = (await res.json()) as { status: string; error?: string };
        assert.equal(body.status, 'success', `${q.name}: ${q.expr}: ${body.error}`);
      }
      const gauges = await query('ollama_model_vram_ratio');
      assert.ok(gauges.length > 0, 'the loaded-model gauges reach Prometheus');
    } finally {
      prom.kill('SIGTERM');
      await new Promise((r) => prom.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
