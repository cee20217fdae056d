/**
 * Several Ollamas behind one gateway (OLLAMA_HOST a list): each fake with its own models on disk
 * and in memory, its own delays and faults. Calls go where their model is warm, concurrent load
 * splits by calls in flight, a dead backend gets no traffic while calls succeed elsewhere, a call
 * that fails before its backend had the whole request is sent once to the next backend (one it had is run nowhere again), and the listings are unions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FIVE_XX_STRIKES } from '../../src/fleet/health';
import { fixtureBehavior, FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startGatewayFor, type GatewayOnly } from '../helpers/gateway';
import { HostileUpstream, reply, reset } from '../helpers/hostile-upstream';
import { eventually, sleep } from '../helpers/wait';

const name = (f: FakeOllama) => `127.0.0.1:${f.port}`;
const chats = (f: FakeOllama) => f.requests.filter((r) => r.url === '/api/chat').length;

async function fleet(sets: { onDisk: string[]; loaded: string[] }[], env: Record<string, string> = {}): Promise<{ fakes: FakeOllama[]; gw: GatewayOnly }> {
  const fakes = await Promise.all(sets.map(async (models) => Object.assign(await new FakeOllama().start(), { models })));
  // Polled rarely: each test polls when it wants the gateway to know what the fakes hold.
  const gw = await startGatewayFor(fakes.map((f) => f.origin).join(','), { OLLAMA_POLL_INTERVAL_SECONDS: '600', ...env });
  await gw.gw.poller!.pollNow();
  return { fakes, gw };
}

async function close(s: { fakes: FakeOllama[]; gw: GatewayOnly }): Promise<void> {
  await s.gw.close();
  await Promise.all(s.fakes.map((f) => f.close().catch(() => {})));
}

const chat = (url: string, model: string, extra: Record<string, unknown> = {}) =>
  fetch(`${url}/api/chat`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false, ...extra }) });

describe('routing an LLM call', () => {
  let s: Awaited<ReturnType<typeof fleet>>;
  before(async () => {
    s = await fleet([
      { onDisk: ['llama3.2:latest', 'qwen3:8b'], loaded: ['qwen3:8b'] },
      { onDisk: ['llama3.2:latest', 'all-minilm:latest'], loaded: ['llama3.2:latest'] },
      { onDisk: ['all-minilm:latest'], loaded: ['all-minilm:latest'] },
    ]);
  });
  after(() => close(s));

  it('goes to the backend where the model is loaded, not one that only has it on disk', async () => {
    const [a, b, c] = s.fakes;
    for (let i = 0; i < 3; i++) assert.equal((await chat(s.gw.url, 'llama3.2')).status, 200);
    assert.deepEqual([chats(a), chats(b), chats(c)], [0, 3, 0]);
    const embed = await fetch(`${s.gw.url}/api/embed`, { method: 'POST', body: JSON.stringify({ model: 'all-minilm', input: 'x' }) });
    assert.equal(embed.status, 200);
    assert.equal(c.last('/api/embed')?.method, 'POST');
    assert.equal(b.last('/api/embed'), undefined);
    const m = await metricsText(s.gw.url);
    assert.equal(sample(m, 'ollama_routing_decisions_total', { backend: name(b), reason: 'loaded' }), 3);
    assert.equal(sample(m, 'ollama_requests_total', { backend: name(b), model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 3);
    assert.equal(sample(m, 'ollama_cold_loads_total', { backend: name(b), model: 'llama3.2:latest' }), undefined, 'a warm call is no cold load');
    // The state gauges are per backend.
    assert.equal(sample(m, 'ollama_up', { backend: name(a) }), 1);
    assert.equal(sample(m, 'ollama_models_loaded', { backend: name(c) }), 1);
    assert.ok(sample(m, 'ollama_model_loaded_bytes', { backend: name(a), model: 'qwen3:8b' })! > 0);
    // The choice is in the DEBUG log.
    const routed = s.gw.logs.find((l) => l.msg === 'routed');
    assert.deepEqual([routed?.backend, routed?.reason], [name(b), 'loaded']);
  });

  it('exports the routing metrics the dashboard and the alert rules query', async () => {
    const families = new Set([...(await metricsText(s.gw.url)).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    // ollama_backend_failovers_total and ollama_cold_loads_total appear with their first count: the
    // failover and cold-load tests below read them.
    for (const n of ['ollama_backend_in_flight', 'ollama_backend_healthy', 'ollama_routing_decisions_total'])
      assert.ok(families.has(n), `${n} is not exported`);
  });

  it('sends a model loaded nowhere to a backend that has it on disk, and counts the cold load', async () => {
    const [a] = s.fakes;
    // llama3.2 is on disk at a and b; b has it loaded. all-minilm is loaded at c... qwen3 only at a.
    const before = chats(a);
    assert.equal((await chat(s.gw.url, 'qwen3:8b')).status, 200);
    assert.equal(chats(a), before + 1);
    const m = await metricsText(s.gw.url);
    assert.equal(sample(m, 'ollama_routing_decisions_total', { backend: name(a), reason: 'loaded' }), 1);
  });

  it('answers 400 for an X-Ollama-Backend that is not configured, naming the configured ones, and never forwards the header', async () => {
    const res = await fetch(`${s.gw.url}/api/pull`, { method: 'POST', headers: { 'x-ollama-backend': 'evil.example:80' }, body: '{"model":"llama3.2"}' });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: string };
    assert.match(body.error, new RegExp(name(s.fakes[0]).replace(/\./g, '\\.')));
    assert.doesNotMatch(body.error, /evil/);
    const [, , c] = s.fakes;
    const ok = await fetch(`${s.gw.url}/api/pull`, { method: 'POST', headers: { 'x-ollama-backend': name(c) }, body: '{"model":"llama3.2","stream":false}' });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    const got = c.last('/api/pull');
    assert.ok(got, 'the named backend got the pull');
    assert.equal(got.headers['x-ollama-backend'], undefined);
  });

  it('sends pull to the backend with the least memory in use, and show to one that has the model', async () => {
    const [a, b, c] = s.fakes;
    // Each fake has one model loaded (3 GiB): a tie goes to the first in the list.
    const pull = await fetch(`${s.gw.url}/api/pull`, { method: 'POST', body: '{"model":"llama3.2"}' });
    await pull.arrayBuffer();
    assert.ok(a.last('/api/pull'));
    const show = await fetch(`${s.gw.url}/api/show`, { method: 'POST', body: '{"model":"all-minilm"}' });
    assert.equal(show.status, 200);
    await show.arrayBuffer();
    assert.ok(c.last('/api/show') ?? b.last('/api/show'));
    assert.equal(a.last('/api/show'), undefined);
  });

  it('answers /api/tags and /api/ps with the union, each model once with the backends that have it', async () => {
    const [a, b, c] = s.fakes;
    const tags = await fetch(`${s.gw.url}/api/tags`);
    assert.equal(tags.status, 200);
    assert.equal(tags.headers.get('x-ollama-backends'), [a, b, c].map(name).join(', '));
    const listed = ((await tags.json()) as { models: { name: string; backends: string[] }[] }).models;
    assert.deepEqual(
      listed.map((m) => [m.name, m.backends]),
      [
        ['llama3.2:latest', [name(a), name(b)]],
        ['qwen3:8b', [name(a)]],
        ['all-minilm:latest', [name(b), name(c)]],
      ],
    );
    const ps = (await (await fetch(`${s.gw.url}/api/ps`)).json()) as { models: { name: string; backends: string[] }[] };
    assert.deepEqual(
      ps.models.map((m) => [m.name, m.backends]),
      [
        ['qwen3:8b', [name(a)]],
        ['llama3.2:latest', [name(b)]],
        ['all-minilm:latest', [name(c)]],
      ],
    );
  });
});

describe('spreading load', () => {
  it('splits concurrent calls evenly between two backends that both have the model loaded (fewest in flight)', async () => {
    const s = await fleet([
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
    ]);
    try {
      for (const f of s.fakes) f.byModel.set('llama3.2', () => ({ ...fixtureBehavior('chat-nostream.json'), delayMs: 300 }));
      const statuses = await Promise.all(Array.from({ length: 10 }, () => chat(s.gw.url, 'llama3.2').then((r) => r.status)));
      assert.deepEqual(statuses, Array(10).fill(200));
      assert.deepEqual(s.fakes.map(chats), [5, 5]);
    } finally {
      await close(s);
    }
  });

  it('spreads cold loads of a model only on disk, then keeps the model where it was loaded', async () => {
    const s = await fleet([
      { onDisk: ['llama3.2:latest'], loaded: [] },
      { onDisk: ['llama3.2:latest'], loaded: [] },
      { onDisk: [], loaded: [] },
    ]);
    try {
      for (const f of s.fakes) f.byModel.set('llama3.2', () => ({ ...fixtureBehavior('chat-nostream.json'), delayMs: 200 }));
      await Promise.all([chat(s.gw.url, 'llama3.2'), chat(s.gw.url, 'llama3.2')]);
      assert.deepEqual(s.fakes.map(chats), [1, 1, 0]);
      const m = await metricsText(s.gw.url);
      for (const f of s.fakes.slice(0, 2)) {
        assert.equal(sample(m, 'ollama_routing_decisions_total', { backend: name(f), reason: 'on_disk' }), 1);
        assert.equal(sample(m, 'ollama_cold_loads_total', { backend: name(f), model: 'llama3.2:latest' }), 1);
      }
      // Now warm at both: the next call is routed as loaded.
      await chat(s.gw.url, 'llama3.2');
      const m2 = await metricsText(s.gw.url);
      const loaded = s.fakes.slice(0, 2).map((f) => sample(m2, 'ollama_routing_decisions_total', { backend: name(f), reason: 'loaded' }) ?? 0);
      assert.equal(loaded[0] + loaded[1], 1);
    } finally {
      await close(s);
    }
  });
});

describe('failover', () => {
  it('a dead backend gets no traffic: its stream in flight ends cleanly, new calls succeed elsewhere after one failover', async () => {
    const s = await fleet([
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
      { onDisk: ['llama3.2:latest'], loaded: [] },
    ]);
    const [a, b] = s.fakes;
    try {
      // A stream in flight at a, which then dies.
      a.next({
        kind: 'stall',
        status: 200,
        contentType: 'application/x-ndjson',
        body: Buffer.from('{"model":"llama3.2","message":{"role":"assistant","content":"Hi"},"done":false}\n'),
        bytes: 79,
      });
      const streaming = await fetch(`${s.gw.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}' });
      assert.equal(streaming.status, 200);
      const reading = streaming.text().then(
        () => 'ended',
        () => 'cut',
      );
      await a.close();
      assert.equal(await reading, 'cut', 'the client sees the stream end early');

      const started = performance.now();
      for (let i = 0; i < 4; i++) assert.equal((await chat(s.gw.url, 'llama3.2')).status, 200);
      const failoverMs = performance.now() - started;
      assert.equal(chats(b), 4);
      assert.ok(failoverMs < 2000, `calls succeeded elsewhere within ${failoverMs} ms`);
      const m = await metricsText(s.gw.url);
      assert.equal(sample(m, 'ollama_backend_failovers_total', { from: name(a), to: name(b) }), 1, 'only the first call tried the dead backend');
      assert.equal(sample(m, 'ollama_routing_decisions_total', { backend: name(b), reason: 'retry' }), 1);
      assert.equal(sample(m, 'ollama_backend_healthy', { backend: name(a) }), 0);
      assert.equal(sample(m, 'ollama_request_errors_total', { backend: name(a), model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'stream_error' }), 1);
      assert.ok(s.gw.logs.some((l) => l.msg === 'backend is down; calls go elsewhere' && l.backend === name(a)));
    } finally {
      await close(s);
    }
  });

  it('runs a call once: a backend that read the whole request and reset gets it neither again nor on the next backend', async () => {
    const s = await fleet([
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
    ]);
    const [a, b] = s.fakes;
    try {
      // The call goes out on the kept-alive connection of the last poll, and a crashes having read
      // it whole: as far as the gateway can know, it may have been generating.
      a.next({ kind: 'reset' }).next({ kind: 'reset' });
      const res = await chat(s.gw.url, 'llama3.2');
      assert.equal(res.status, 502);
      assert.match(((await res.json()) as { error: string }).error, /closed the connection before answering/);
      assert.deepEqual([chats(a), chats(b)], [1, 0], 'the upstream executions of one call');
      const m = await metricsText(s.gw.url);
      assert.equal(sample(m, 'ollama_backend_failovers_total', { from: name(a), to: name(b) }), undefined);
      assert.equal(
        sample(m, 'ollama_request_errors_total', { backend: name(a), model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'upstream_unreachable' }),
        1,
      );
      // A reset is no proof the backend is gone: it stays in rotation.
      assert.equal(sample(m, 'ollama_backend_healthy', { backend: name(a) }), 1);
    } finally {
      await close(s);
    }
  });

  it('takes a backend that reads every call and resets it out of rotation after a few, though its polls succeed; no call runs twice', async () => {
    // A raw server that answers Ollama's listings, so every poll finds it well, and reads each
    // chat whole and then destroys the connection: no answer, not even a head.
    const broken = await new HostileUpstream().start();
    const json = (body: string | Buffer) => () => reply(200, 'application/json; charset=utf-8', body);
    broken.on('/api/version', json('{"version":"0.12.0"}'));
    broken.on('/api/tags', json(fixture('tags.json')));
    broken.on('/api/ps', json(fixture('ps.json')));
    broken.on('/api/chat', () => [reset()]);
    const good = Object.assign(await new FakeOllama().start(), { models: { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] } });
    const gw = await startGatewayFor(`${broken.origin},${good.origin}`, { OLLAMA_POLL_INTERVAL_SECONDS: '600' });
    const brokenName = `127.0.0.1:${broken.port}`;
    const atBroken = () => broken.requests.filter((r) => r.path === '/api/chat').length;
    const healthy = async () => sample(await metricsText(gw.url), 'ollama_backend_healthy', { backend: brokenName });
    const statuses: number[] = [];
    const call = async () => {
      const res = await chat(gw.url, 'llama3.2');
      await res.text();
      statuses.push(res.status);
    };
    try {
      await gw.gw.poller!.pollNow();
      assert.equal(await healthy(), 1, 'its polls succeed');
      // Both have the model loaded: the calls take turns until one reaches the broken backend.
      while (atBroken() === 0 && statuses.length < 4) await call();
      assert.equal(atBroken(), 1);
      assert.equal(statuses.at(-1), 502, 'the call it reset');
      assert.equal(await healthy(), 1, 'one reset is no proof: it stays in rotation');

      for (let i = 0; i < 12; i++) await call();
      assert.equal(atBroken(), FIVE_XX_STRIKES, `out after ${FIVE_XX_STRIKES} resets in a row, and no call since`);
      assert.equal(await healthy(), 0);
      const cooling = gw.logs.find((l) => l.msg === 'backend fails calls; cooling down, calls go elsewhere' && l.backend === brokenName);
      assert.ok(cooling, 'the transition is logged');
      assert.match(String(cooling.reason), /calls in a row failed; the last got no answer \(Ollama at .* closed the connection before answering\)/);
      // The later calls all went to the good backend and were answered.
      assert.deepEqual(statuses.slice(-6), [200, 200, 200, 200, 200, 200]);
      // Each call ran once: a call the broken backend had whole is never sent again.
      const atGood = good.requests.filter((r) => r.url === '/api/chat').length;
      assert.equal(atGood + atBroken(), statuses.length);
      assert.equal(statuses.filter((st) => st === 502).length, FIVE_XX_STRIKES);
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_backend_failovers_total', { from: brokenName, to: `127.0.0.1:${good.port}` }), undefined);
    } finally {
      await gw.close();
      await broken.close();
      await good.close();
    }
  });

  it('takes a backend answering 5xx repeatedly out for a cool-down, and back after a poll and a trial call', async () => {
    const s = await fleet([
      { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
      { onDisk: ['llama3.2:latest'], loaded: [] },
    ]);
    const [a, b] = s.fakes;
    try {
      const fail = {
        kind: 'body' as const,
        status: 500,
        contentType: 'application/json',
        body: Buffer.from('{"error":"llama runner process has terminated"}'),
      };
      a.next(fail).next(fail).next(fail);
      for (let i = 0; i < 3; i++) assert.equal((await chat(s.gw.url, 'llama3.2')).status, 500);
      assert.ok(s.gw.logs.some((l) => l.msg === 'backend fails calls; cooling down, calls go elsewhere' && l.backend === name(a)));
      assert.equal((await chat(s.gw.url, 'llama3.2')).status, 200);
      assert.deepEqual([chats(a), chats(b)], [3, 1]);
      // After the cool-down (5 s) and a successful poll, a trial call goes to a, which answers.
      await sleep(5100);
      await s.gw.gw.poller!.pollNow();
      for (let i = 0; i < 2; i++) assert.equal((await chat(s.gw.url, 'llama3.2')).status, 200);
      assert.ok(chats(a) >= 4, 'a had a trial call');
      await eventually(() => s.gw.logs.some((l) => l.msg === 'backend is back in rotation' && l.backend === name(a)), 'a back in rotation');
    } finally {
      await close(s);
    }
  });
});

describe('affinity (ROUTING_AFFINITY=prefix)', () => {
  it('keeps a conversation on the backend it started on, while other conversations spread', async () => {
    const s = await fleet(
      [
        { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
        { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] },
      ],
      { ROUTING_AFFINITY: 'prefix' },
    );
    try {
      const turn = (first: string, n: number) =>
        chat(s.gw.url, 'llama3.2', {
          messages: [
            { role: 'system', content: 'be brief' },
            { role: 'user', content: first },
            ...Array.from({ length: n }, (_, i) => ({ role: i % 2 ? 'user' : 'assistant', content: `turn ${i}` })),
          ],
        });
      for (let n = 0; n < 6; n += 2) assert.equal((await turn('conversation one', n)).status, 200);
      const perFake = s.fakes.map(chats);
      assert.ok(perFake.includes(3) && perFake.includes(0), `one conversation, one backend: ${perFake}`);
      const m = await metricsText(s.gw.url);
      const sticky = s.fakes.map((f) => sample(m, 'ollama_routing_decisions_total', { backend: name(f), reason: 'affinity' }) ?? 0);
      assert.equal(sticky[0] + sticky[1], 2);
    } finally {
      await close(s);
    }
  });
});
