/**
 * What a scrape, a console query and Ollama's listings may cost, whatever clients and backends
 * send: sizes and counts bounded at the default settings (the timings are in
 * bench/scrape-cost.ts, not asserted here).
 *
 * - 200 model names nobody serves, on every LLM endpoint, buy only their request and error
 *   counters: the exposition stays under 2 MB; a model that answers gets its full set;
 * - an `/api/ps` of 20,000 loaded models and an `/api/tags` of 10,000 keep what the poller bounds
 *   say, in the gauges and in the console's `now`, while the counts cover every entry;
 * - 32 made-up names (404s) do not keep a served model out of the console's history.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SERIES_PER_UNSERVED_LABEL } from '../../otel/labels';
import { MAX_LISTED_MODELS, MAX_LOADED_MODELS } from '../../src/poller';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { eventually } from '../helpers/wait';

const LLM_PATHS = ['/api/chat', '/api/generate', '/api/embed', '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/messages'];
/** The bound the README states for one exposition at the default settings. */
const EXPOSITION_BOUND_BYTES = 2_000_000;

const post = async (url: string, path: string, model: string): Promise<number> => {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: false, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }], prompt: 'hi', input: 'hi' }),
  });
  await res.arrayBuffer();
  return res.status;
};

/** The series of an exposition that carry `label="value"`. */
const seriesWith = (text: string, label: string, value: string): string[] =>
  text.split('\n').filter((l) => !l.startsWith('#') && l.includes(`${label}="${value}"`));

async function withStack(env: Record<string, string>, fn: (s: TestStack) => Promise<void>): Promise<void> {
  const s = await startStack(env);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

describe('the cost of a scrape, whatever clients sent', () => {
  it(
    '200 names nobody serves, on every LLM endpoint, keep the exposition under 2 MB; a model that answers gets its full set',
    { timeout: 120_000 },
    async () => {
      await withStack({}, async (s) => {
        assert.equal(await post(s.url, '/api/chat', 'llama3.2'), 200);
        for (let i = 0; i < 200; i++) {
          const statuses = await Promise.all(LLM_PATHS.map((p) => post(s.url, p, `junk-${i}`)));
          assert.ok(
            statuses.every((st) => st >= 400),
            `junk-${i}: ${statuses.join(',')}`,
          );
        }
        const m = await metricsText(s.url);
        assert.ok(m.length < EXPOSITION_BOUND_BYTES, `the exposition is ${m.length} bytes`);
        // Request and error counts and in-flight gauges, at most MAX_SERIES_PER_UNSERVED_LABEL; no histogram.
        const junk = seriesWith(m, 'model', 'junk-7:latest');
        assert.ok(junk.length > 0 && junk.length <= MAX_SERIES_PER_UNSERVED_LABEL, `junk-7 has ${junk.length} series:\n${junk.join('\n')}`);
        assert.ok(!junk.some((l) => /_bucket|_sum|_count/.test(l)));
        assert.equal(seriesWith(m, 'gen_ai_request_model', 'junk-7:latest').length, 0, 'no GenAI histogram');
        // Every call is counted, under its name or, past the name's bound, under other.
        const requests = m
          .split('\n')
          .filter((l) => l.startsWith('ollama_requests_total{'))
          .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
        assert.equal(requests, 1 + 200 * LLM_PATHS.length);
        // The model that answered has every histogram, and its error series start at 0.
        assert.equal(sample(m, 'ollama_response_seconds_count', { model: 'llama3.2:latest', endpoint: '/api/chat' }), 1);
        assert.equal(sample(m, 'ollama_eval_duration_seconds_count', { model: 'llama3.2:latest' }), 1);
        assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'upstream_5xx' }), 0);
      });
    },
  );

  it("a name's first successful answer is measured in full", { timeout: 20_000 }, async () => {
    await withStack({}, async (s) => {
      assert.equal(await post(s.url, '/api/chat', 'nope'), 404);
      assert.equal(sample(await metricsText(s.url), 'ollama_requests_total', { model: 'nope:latest', endpoint: '/api/chat', status: '404' }), 1);
      assert.equal(seriesWith(await metricsText(s.url), 'model', 'nope:latest').filter((l) => l.includes('_bucket')).length, 0);
      assert.equal(await post(s.url, '/api/chat', 'qwen3:8b'), 200);
      const m = await metricsText(s.url);
      assert.equal(sample(m, 'ollama_response_seconds_count', { model: 'qwen3:8b', endpoint: '/api/chat' }), 1);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'qwen3:8b', endpoint: '/api/chat', status: '200' }), 1);
    });
  });
});

describe("the cost of Ollama's listings", () => {
  it(
    'an /api/ps of 20,000 models and /api/tags of 10,000 keep the poller bounds in the gauges and the console; the counts cover all',
    { timeout: 60_000 },
    async () => {
      await withStack({ OLLAMA_POLL_INTERVAL_SECONDS: '1' }, async (s) => {
        const long = 'x'.repeat(300);
        s.fake.models = {
          onDisk: ['llama3.2:latest', ...Array.from({ length: 10_000 }, (_, i) => `disk-${i}:latest`)],
          loaded: [`${long}:latest`, ...Array.from({ length: 20_000 }, (_, i) => `loaded-${i}:latest`)],
        };
        let m = '';
        await eventually(
          async () => {
            m = await metricsText(s.url);
            return sample(m, 'ollama_models_loaded') === 20_001;
          },
          'a poll of the big listings',
          20_000,
        );
        assert.equal(sample(m, 'ollama_models_available'), 10_001);
        const perModel = m.split('\n').filter((l) => l.startsWith('ollama_model_loaded_bytes{'));
        assert.equal(perModel.length, MAX_LOADED_MODELS);
        assert.ok(!m.includes(long), 'a name longer than a label may be is kept nowhere');
        assert.ok(m.length < EXPOSITION_BOUND_BYTES, `the exposition is ${m.length} bytes`);

        const res = await fetch(`${s.url}/console/api/v1/now`);
        assert.equal(res.status, 200);
        const body = await res.text();
        const now = JSON.parse(body) as { backends: { loaded: unknown[] }[] };
        assert.equal(now.backends[0]!.loaded.length, MAX_LOADED_MODELS);
        assert.ok(body.length < 100_000, `now is ${body.length} bytes`);
        assert.ok(MAX_LISTED_MODELS < 10_000);
      });
    },
  );
});

describe("the console's history", () => {
  it('32 made-up names (404s) hold every ring; a model Ollama serves then gets its own', { timeout: 30_000 }, async () => {
    await withStack({ OLLAMA_POLL_INTERVAL_SECONDS: '60' }, async (s) => {
      await eventually(async () => sample(await metricsText(s.url), 'ollama_up') === 1, 'the first poll', 10_000);
      for (let i = 0; i < 32; i++) assert.equal(await post(s.url, '/api/chat', `squat-${i}`), 404);
      assert.equal(await post(s.url, '/api/chat', 'llama3.2'), 200);
      assert.equal(await post(s.url, '/api/chat', 'llama3.2'), 200);
      assert.equal(await post(s.url, '/api/chat', 'squat-40'), 404);
      await eventually(
        async () => {
          const view = (await (await fetch(`${s.url}/console/api/v1/models`)).json()) as { models: { model: string; totals: { requests: number } }[] };
          const llama = view.models.find((x) => x.model === 'llama3.2:latest');
          return llama?.totals.requests === 2;
        },
        'llama3.2 in a ring of its own with both its calls',
        5000,
      );
      const view = (await (await fetch(`${s.url}/console/api/v1/models`)).json()) as { models: { model: string; totals: { requests: number } }[] };
      const total = view.models.reduce((n, x) => n + x.totals.requests, 0);
      assert.equal(total, 35, `no call lost: ${JSON.stringify(view.models.map((x) => [x.model, x.totals.requests]))}`);
      assert.ok(view.models.length <= 33);
    });
  });
});
