/**
 * The console's JSON API and files over HTTP, against the real gateway and the fake Ollama: its
 * counts are the counters on /metrics, it shows Ollama's state from the poller, it is protected
 * like /metrics, answers GET and HEAD only, serves no file outside its own, and is gone with
 * CONSOLE=false.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { runWorkers, type GatewayProcess, type WorkersProcess } from '../helpers/process';
import { sleep } from '../helpers/wait';

interface ModelSummary {
  model: string;
  inFlight: number;
  totals: { requests: number; errors: Record<string, number>; inputTokens: number; outputTokens: number; coldLoads: number };
  window: { requests: number; errorsByReason: Record<string, number>; coldLoads: number; ttftP50Seconds: number | null; phases: { calls: number } };
}

interface ModelsView {
  version: number;
  models: ModelSummary[];
  all: ModelSummary;
  series: { model: string | null; points: number; requestsPerSecond: number[] };
}

const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body), headers });
  await res.arrayBuffer();
  return res.status;
};

/** The sum of every series of `name` whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string>): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/** A POST on a connection of its own (fetch would reuse one, and one connection is one worker). */
function postAlone(url: string, path: string, body: unknown): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** A GET with the path sent exactly as written (fetch would resolve `..` itself). */
function rawGet(url: string, path: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const SECRET = 'a-prompt-the-console-must-never-show';

describe('the console API', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '60' });
    await s.gw.poller!.pollNow();
    const chat = { model: 'llama3.2', messages: [{ role: 'user', content: SECRET }] };
    for (let i = 0; i < 4; i++) assert.equal(await post(`${s.url}/api/chat`, chat), 200);
    assert.equal(await post(`${s.url}/api/chat`, { ...chat, stream: false }), 200);
    assert.equal(await post(`${s.url}/api/generate`, { model: 'qwen3:8b', prompt: SECRET }), 200);
    assert.equal(await post(`${s.url}/v1/chat/completions`, { ...chat, stream: true }), 200);
    assert.equal(await post(`${s.url}/api/chat`, { model: 'no-such-model', messages: chat.messages }), 404);
    // A load that takes Ollama 600 ms is a cold load; an instant one is not.
    const load = fixture('chat-load.json');
    s.fake.next({ kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: load, delayMs: 600 });
    assert.equal(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: [] }), 200);
    assert.equal(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: [] }), 200);
  });
  after(() => s.close());

  it('counts exactly what /metrics counts, per model: requests, errors by reason, tokens, cold loads', async () => {
    const view = (await (await fetch(`${s.url}/console/api/v1/models`)).json()) as ModelsView;
    const text = await metricsText(s.url);
    assert.equal(view.version, 1);
    assert.deepEqual(view.models.map((m) => m.model).sort(), ['llama3.2:latest', 'no-such-model:latest', 'qwen3:8b']);
    for (const m of view.models) {
      const model = { model: m.model };
      assert.equal(m.totals.requests, total(text, 'ollama_requests_total', model), `${m.model} requests`);
      assert.equal(m.window.requests, m.totals.requests, `${m.model}: all traffic is in the window`);
      for (const [reason, n] of Object.entries(m.totals.errors)) assert.equal(n, total(text, 'ollama_request_errors_total', { ...model, reason }));
      assert.equal(m.totals.outputTokens, sample(text, 'ollama_tokens_generated_total', model) ?? 0, `${m.model} output tokens`);
      assert.equal(m.totals.inputTokens, sample(text, 'ollama_tokens_processed_total', model) ?? 0, `${m.model} input tokens`);
      const loads = sample(text, 'ollama_load_duration_seconds_count', model) ?? 0;
      const warm = sample(text, 'ollama_load_duration_seconds_bucket', { ...model, le: '0.5' }) ?? 0;
      assert.equal(m.totals.coldLoads, loads - warm, `${m.model} cold loads`);
    }
    const llama = view.models.find((m) => m.model === 'llama3.2:latest')!;
    assert.equal(llama.totals.requests, 6);
    assert.equal(llama.totals.coldLoads, 1);
    assert.deepEqual(view.models.find((m) => m.model === 'no-such-model:latest')!.totals.errors, { upstream_4xx: 1 });
    assert.ok(llama.window.ttftP50Seconds! > 0);
    assert.ok(llama.window.phases.calls >= 5, 'native answers report their phases');
    assert.equal(view.all.totals.requests, total(text, 'ollama_requests_total', {}));
    assert.equal(view.series.model, null);
    assert.equal(view.series.points, 360);
    // The traffic is in the newest buckets (it may straddle a bucket boundary).
    assert.ok(view.series.requestsPerSecond.slice(-3).some((r) => r > 0));
  });

  it('gives the series of one model on request, over the minutes asked for', async () => {
    const view = (await (await fetch(`${s.url}/console/api/v1/models?minutes=5&model=qwen3%3A8b`)).json()) as ModelsView;
    assert.equal(view.series.model, 'qwen3:8b');
    assert.equal(view.series.points, 30);
    // The traffic is in the newest buckets (it may straddle a bucket boundary).
    assert.ok(view.series.requestsPerSecond.slice(-3).some((r) => r > 0));
  });

  it('shows Ollama as the poller last saw it, and what is in flight', async () => {
    const now = (await (await fetch(`${s.url}/console/api/v1/now`)).json()) as {
      inFlight: number;
      backends: { origin: string; up: boolean; ollamaVersion: string; loaded: { model: string; bytes: number; vramRatio: number; contextLength: number }[] }[];
    };
    assert.equal(now.inFlight, 0);
    assert.equal(now.backends.length, 1);
    const b = now.backends[0]!;
    assert.equal(b.origin, s.fake.origin);
    assert.equal(b.up, true);
    assert.equal(b.ollamaVersion, JSON.parse(fixture('version.json').toString('utf8')).version);
    assert.deepEqual(
      b.loaded.map((m) => [m.model, m.vramRatio, m.contextLength]),
      [
        ['llama3.2:latest', 1, 4096],
        ['all-minilm:latest', 1, 512],
      ],
    );
  });

  it('lists the recent calls newest first, with their phases and never their text', async () => {
    const res = await fetch(`${s.url}/console/api/v1/calls?limit=3`);
    const body = await res.text();
    const { calls } = JSON.parse(body) as { calls: { endpoint: string; status: number; phases?: { generationMs: number } }[] };
    assert.equal(calls.length, 3);
    assert.deepEqual(
      calls.map((c) => c.endpoint),
      ['/api/chat', '/api/chat', '/api/chat'],
    );
    const all = await (await fetch(`${s.url}/console/api/v1/calls`)).text();
    assert.equal((JSON.parse(all) as { calls: unknown[] }).calls.length, 10);
    for (const text of [all, await (await fetch(`${s.url}/console/api/v1/models`)).text()]) {
      assert.ok(!text.includes(SECRET), 'no prompt text');
      assert.ok(!text.includes('content'), 'no answer text');
    }
    const generate = (JSON.parse(all) as { calls: { endpoint: string; phases?: { generationMs: number } }[] }).calls.find(
      (c) => c.endpoint === '/api/generate',
    );
    assert.ok(generate?.phases && generate.phases.generationMs > 0);
  });

  it('refuses bad parameters with 400 and ignores unknown ones', async () => {
    for (const q of ['minutes=0', 'minutes=61', 'minutes=abc', 'minutes=1.5', 'minutes=0x10', 'minutes=1e1', 'minutes=%2010', `model=${'x'.repeat(300)}`]) {
      assert.equal((await fetch(`${s.url}/console/api/v1/models?${q}`)).status, 400, q);
    }
    assert.equal((await fetch(`${s.url}/console/api/v1/calls?limit=501`)).status, 400);
    assert.equal((await fetch(`${s.url}/console/api/v1/calls?limit=+5`)).status, 400);
    assert.equal((await fetch(`${s.url}/console/api/v1/models?foo=bar&minutes=2`)).status, 200);
    assert.equal((await fetch(`${s.url}/console/api/v1/nothing`)).status, 404);
    assert.equal((await fetch(`${s.url}/console/api/v2/models`)).status, 404);
  });

  it('serves the page and its files with a same-origin Content-Security-Policy; /console redirects to /console/', async () => {
    const redirect = await fetch(`${s.url}/console?x=1`, { redirect: 'manual' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get('location'), 'console/');
    const page = await fetch(`${s.url}/console/?view=anything`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /^default-src 'self'/);
    assert.match(await page.text(), /<title>Ollama gateway/);
    const js = await fetch(`${s.url}/console/console.js`);
    assert.match(js.headers.get('content-type')!, /^text\/javascript/);
    const etag = js.headers.get('etag')!;
    assert.equal((await fetch(`${s.url}/console/console.js`, { headers: { 'if-none-match': etag } })).status, 304);
    const head = await rawGet(s.url, '/console/', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('answers GET and HEAD only, and never forwards a console path to Ollama', async () => {
    const before = s.fake.requests.length;
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
      const res = await rawGet(s.url, '/console/api/v1/models', method);
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD');
    }
    assert.equal((await rawGet(s.url, '/console/nothing-here.js')).status, 404);
    assert.equal(s.fake.requests.length, before);
  });

  it('serves no file outside its own folder, however the path is spelled', async () => {
    for (const path of [
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/.%2e/package.json',
      '/console/..%2fpackage.json',
      '/console/%2e%2e%2f%2e%2e%2fpackage.json',
      '/console/console.js/../../package.json',
      '/console/..\\package.json',
      '/console/package.json',
      '/console/assets/../../../../package.json',
      '/console/%2fetc%2fpasswd',
      '/console//etc/passwd',
      '/console/index.html%00.js',
    ]) {
      const res = await rawGet(s.url, path);
      assert.ok(!res.body.includes('"ollama-otel-gateway"') && !res.body.includes('root:'), `${path} served a file it must not`);
      assert.notEqual(res.status, 200, path);
    }
  });
});

describe('the console behind a token', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack({ METRICS_BEARER_TOKEN: 'metrics-secret', GATEWAY_API_KEYS: 'key-one' });
  });
  after(() => s.close());

  it('loads the page without a token, and needs the metrics token or an API key for the API', async () => {
    assert.equal((await fetch(`${s.url}/console/`)).status, 200);
    const refused = await fetch(`${s.url}/console/api/v1/models`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await fetch(`${s.url}/console/api/v1/now`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    for (const token of ['metrics-secret', 'key-one']) {
      assert.equal((await fetch(`${s.url}/console/api/v1/calls`, { headers: { authorization: `Bearer ${token}` } })).status, 200, token);
    }
    const text = await (await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).text();
    assert.equal(sample(text, 'ollama_gateway_auth_failures_total', { reason: 'missing', scope: 'console' }), 1);
    assert.equal(sample(text, 'ollama_gateway_auth_failures_total', { reason: 'invalid', scope: 'console' }), 1);
  });
});

describe('CONSOLE=false', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack({ CONSOLE: 'false' });
  });
  after(() => s.close());

  it('leaves /console to Ollama like any other path, and keeps no history', async () => {
    const res = await fetch(`${s.url}/console/api/v1/models`);
    assert.equal(res.status, 404);
    assert.equal(s.fake.last('/console/api/v1/models')?.method, 'GET');
    assert.equal((await fetch(`${s.url}/console/`)).status, 404);
    assert.equal(s.fake.last('/console/')?.method, 'GET');
  });
});

describe('the console of several workers', () => {
  let fake: FakeOllama;
  let w: WorkersProcess;
  let gw: GatewayProcess;
  let url: string;
  before(async () => {
    fake = await new FakeOllama().start();
    w = await runWorkers(fake.origin, 2, { OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    ({ gw, url } = w);
  });
  after(async () => {
    await w.stop();
    await fake.close();
  });

  it('answers for the whole gateway, whichever worker takes the request', async () => {
    // Connections of their own, several at once, until both workers have served some: which
    // worker accepts a connection is the kernel's choice.
    let sent = 0;
    const served = () => new Set(gw.lines.filter((l) => l.msg === 'request').map((l) => l.worker)).size;
    while (served() < 2 && sent < 400) {
      const batch = Array.from({ length: 8 }, () => postAlone(url, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }));
      for (const status of await Promise.all(batch)) assert.equal(status, 200);
      sent += batch.length;
      await sleep(20);
    }
    assert.equal(served(), 2, 'both workers served calls');
    const limit = Math.min(sent, 500);
    for (let i = 0; i < 4; i++) {
      const view = JSON.parse((await rawGet(url, '/console/api/v1/models')).body) as ModelsView;
      assert.equal(view.all.totals.requests, sent);
      const calls = JSON.parse((await rawGet(url, '/console/api/v1/calls')).body) as { calls: { at: number }[] };
      assert.equal(calls.calls.length, limit);
      assert.deepEqual(
        calls.calls.map((c) => c.at),
        calls.calls.map((c) => c.at).sort((a, b) => b - a),
      );
    }
  });
});
