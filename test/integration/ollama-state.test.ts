/**
 * What Ollama holds (polled in the background) and bounded model labels under a flood of random
 * model names.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack } from '../helpers/gateway';

interface PsModel {
  name: string;
  size: number;
  size_vram: number;
  expires_at: string;
}

describe('Ollama state gauges', () => {
  it("expose Ollama's version, models on disk and models loaded, from the fixtures' /api/tags and /api/ps", async () => {
    const stack = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '3600' });
    try {
      // A loaded model that unloads in 5 minutes.
      const ps = JSON.parse(fixture('ps.json').toString()) as { models: PsModel[] };
      const expires = new Date(Date.now() + 300_000).toISOString();
      ps.models[0].expires_at = expires;
      ps.models[0].size_vram = Math.floor(ps.models[0].size / 4);
      await stack.gw.poller!.pollNow(); // the poll started at start-up is over
      stack.fake.next({ kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: Buffer.from(JSON.stringify(ps)) }, '/api/ps');
      await stack.gw.poller!.pollNow();
      const m = await metricsText(stack.url);
      const tags = JSON.parse(fixture('tags.json').toString()) as { models: { size: number }[] };
      assert.equal(sample(m, 'ollama_up'), 1);
      assert.equal(sample(m, 'ollama_build_info', { version: '0.32.15' }), 1);
      assert.equal(sample(m, 'ollama_models_available'), tags.models.length);
      assert.equal(
        sample(m, 'ollama_models_available_bytes'),
        tags.models.reduce((n, x) => n + x.size, 0),
      );
      assert.equal(sample(m, 'ollama_models_loaded'), ps.models.length);
      const first = { model: ps.models[0].name.includes(':') ? ps.models[0].name : `${ps.models[0].name}:latest` };
      assert.equal(sample(m, 'ollama_model_loaded_bytes', first), ps.models[0].size);
      assert.equal(sample(m, 'ollama_model_vram_bytes', first), ps.models[0].size_vram);
      assert.equal(sample(m, 'ollama_model_vram_ratio', first), ps.models[0].size_vram / ps.models[0].size);
      const unload = sample(m, 'ollama_model_unload_seconds', first)!;
      assert.ok(unload > 290 && unload <= 300, `unloads in ${unload}s`);
    } finally {
      await stack.close();
    }
  });

  it('sets ollama_up to 0 and leaves the other values out when a poll fails', async () => {
    const stack = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '3600' });
    try {
      await stack.gw.poller!.pollNow(); // the poll started at start-up is over
      assert.equal(sample(await metricsText(stack.url), 'ollama_up'), 1);
      stack.fake.next({ kind: 'reset' }, '/api/tags');
      await stack.gw.poller!.pollNow();
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_up'), 0);
      assert.ok(!/^ollama_(build_info|models_|model_)/m.test(m), 'no stale values after a failed poll');
      assert.ok(stack.logs.some((l) => l.msg === 'polling Ollama failed; ollama_up is 0'));
      await stack.gw.poller!.pollNow();
      assert.equal(sample(await metricsText(stack.url), 'ollama_up'), 1);
    } finally {
      await stack.close();
    }
  });

  it('never has more than one poll in flight, and polls off the request path', async () => {
    const stack = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '0.02' });
    try {
      stack.fake.next({ kind: 'hang' }, '/api/version');
      await new Promise((r) => setTimeout(r, 300));
      const versionCalls = stack.fake.requests.filter((r) => r.url === '/api/version').length;
      assert.equal(versionCalls, 1, 'the next poll waits for the hanging one');
      // Requests are served meanwhile.
      const res = await fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","stream":false}' });
      assert.equal(res.status, 200);
      await res.text();
    } finally {
      await stack.close();
    }
  });
});

describe('bounded model labels', () => {
  it('folds tens of thousands of random model names into "other" and keeps the models Ollama serves', async () => {
    const stack = await startStack({ MAX_MODEL_LABELS: '50', OLLAMA_POLL_INTERVAL_SECONDS: '3600' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    try {
      await stack.gw.poller!.pollNow();
      const N = 10_000;
      let next = 0;
      const send = (model: string) =>
        new Promise<void>((resolve, reject) => {
          const req = http.request(`${stack.url}/api/chat`, { method: 'POST', agent }, (res) => {
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          req.end(JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }));
        });
      const flood = (upTo: number) =>
        Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < upTo) {
              next++;
              await send(`random-${Math.random().toString(36).slice(2)}`);
            }
          }),
        );
      /** The identities of the series (name and labels, without values). */
      const seriesOf = (text: string) =>
        new Set(
          text
            .split('\n')
            .filter((l) => l && !l.startsWith('#'))
            .map((l) => l.slice(0, l.lastIndexOf(' '))),
        );
      await flood(1000);
      const atCap = seriesOf(await metricsText(stack.url));
      await flood(N);
      const afterFlood = seriesOf(await metricsText(stack.url));
      // A model Ollama serves, first seen after the flood, keeps its name.
      await send('qwen3:8b');
      const m = await metricsText(stack.url);
      const models = new Set([...m.matchAll(/^ollama_requests_total\{model="([^"]*)"/gm)].map((x) => x[1]));
      assert.ok(models.size <= 52, `${models.size} model label values`);
      assert.ok(models.has('other'));
      assert.ok(models.has('qwen3:8b'));
      const otherCount = sample(m, 'ollama_requests_total', { model: 'other', endpoint: '/api/chat', status: '404' });
      assert.equal(otherCount, N - 50);
      // 9,000 more names after the cap was reached added not one series.
      assert.deepEqual(
        [...afterFlood].filter((x) => !atCap.has(x)),
        [],
      );
      assert.equal(stack.logs.filter((l) => /MAX_MODEL_LABELS/.test(String(l.msg))).length, 1, 'the cap is logged once');
    } finally {
      agent.destroy();
      await stack.close();
    }
  });
});
