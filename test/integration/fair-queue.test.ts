/**
 * The fair queue in front of the fake Ollama (BACKEND_PARALLEL): a call from a tenant that has had
 * little goes before another tenant's backlog (first-come with QUEUE_ORDER=fifo), a batch tenant
 * waits behind an interactive one, a client that leaves leaves the queue, a full queue answers 503
 * in the API's own error shape, and with two backends a waiting call takes whichever frees first.
 * Order is asserted, never timing: a slot frees when the test aborts the call holding it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { keyFingerprint } from '../../src/scheduler/tenant';
import { FakeOllama } from '../helpers/fake-ollama';
import { metricsText, sample, startGatewayFor, startStack } from '../helpers/gateway';
import { eventually } from '../helpers/wait';

const BATCH = 'batch-key-0123';
const INTER = 'inter-key-4567';
const OPERATOR = 'op-queue-view-89';
const HOLD_MODEL = 'qwen3:8b';

/** A chat the fake answers at once, marked so the fake's request log shows who it was. */
function chat(url: string, key: string, mark: string, signal?: AbortSignal, path = '/api/chat'): Promise<Response> {
  const body =
    path === '/api/chat'
      ? { model: 'llama3.2', messages: [{ role: 'user', content: mark }], stream: false }
      : { model: 'llama3.2', messages: [{ role: 'user', content: mark }] };
  return fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify(body), signal });
}

/** A call the fake never answers: it holds a slot until the test aborts it. */
function hold(url: string, key: string, backend?: FakeOllama): { done: Promise<unknown>; leave: () => void } {
  const ac = new AbortController();
  const pin: Record<string, string> = backend ? { 'x-ollama-backend': `127.0.0.1:${backend.port}` } : {};
  const done = fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, ...pin },
    body: JSON.stringify({ model: HOLD_MODEL, messages: [{ role: 'user', content: 'hold' }] }),
    signal: ac.signal,
  }).catch(() => undefined);
  return { done, leave: () => ac.abort() };
}

/** The marks of the chats the fake received, in order. */
const marks = (fake: FakeOllama): string[] =>
  fake.requests
    .filter((r) => r.method === 'POST' && r.url.startsWith('/api/chat'))
    .map((r) => (JSON.parse(r.body.toString()) as { messages: { content: string }[] }).messages[0]!.content)
    .filter((m) => m !== 'hold');

async function waitingOf(url: string, tenant: string, token?: string): Promise<number> {
  return sample(await metricsText(url, token), 'ollama_gateway_queue_waiting', { tenant }) ?? 0;
}

const waiting = (url: string, key: string): Promise<number> => waitingOf(url, keyFingerprint(key));

/** Queues 4 batch calls and then 1 interactive call behind a held slot; returns the fake's order once all are served. */
async function backlogOrder(env: Record<string, string>, policies = new Map()): Promise<string[]> {
  const stack = await startStack({ GATEWAY_API_KEYS: `${BATCH},${INTER}`, BACKEND_PARALLEL: '1', ...env }, { tenantPolicies: policies });
  stack.fake.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
  try {
    const holder = hold(stack.url, BATCH);
    await eventually(() => stack.fake.requests.some((r) => r.url === '/api/chat'), 'the holding call reaches the fake');
    const calls: Promise<Response>[] = [];
    for (let i = 0; i < 4; i++) {
      calls.push(chat(stack.url, BATCH, `batch-${i}`));
      await eventually(async () => (await waiting(stack.url, BATCH)) === i + 1, `batch-${i} queued`);
    }
    calls.push(chat(stack.url, INTER, 'inter-0'));
    await eventually(async () => (await waiting(stack.url, INTER)) === 1, 'inter-0 queued');
    holder.leave();
    const statuses = await Promise.all(calls.map(async (c) => (await c).status));
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_gateway_queue_waiting', { tenant: keyFingerprint(BATCH) }), 0);
    assert.equal(sample(m, 'ollama_gateway_queue_wait_seconds_count', { tenant: keyFingerprint(INTER) }), 1);
    return marks(stack.fake);
  } finally {
    await stack.close();
  }
}

describe('fair queue', () => {
  it("releases a tenant's first call before another tenant's backlog; QUEUE_ORDER=fifo keeps arrival order", async () => {
    // The batch tenant holds the slot already: the interactive tenant, served nothing yet, goes first.
    assert.deepEqual(await backlogOrder({}), ['inter-0', 'batch-0', 'batch-1', 'batch-2', 'batch-3']);
    assert.deepEqual(await backlogOrder({ QUEUE_ORDER: 'fifo' }), ['batch-0', 'batch-1', 'batch-2', 'batch-3', 'inter-0']);
  });

  it('serves every interactive call before a batch tenant, however little the batch tenant has had', async () => {
    // Weight and class come from the tenants file.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenants-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, `tenants:\n  - name: nightly\n    keys: [${BATCH}]\n    priority: batch\n    weight: 5\n  - name: chat\n    keys: [${INTER}]\n`);
    const stack = await startStack({ GATEWAY_TENANTS_FILE: file, BACKEND_PARALLEL: '1', METRICS_BEARER_TOKEN: OPERATOR });
    stack.fake.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
    try {
      const holder = hold(stack.url, INTER);
      await eventually(() => stack.fake.requests.some((r) => r.url === '/api/chat'), 'the holding call reaches the fake');
      const calls = [chat(stack.url, BATCH, 'batch-0')];
      await eventually(async () => (await waitingOf(stack.url, 'nightly', OPERATOR)) === 1, 'batch-0 queued');
      for (let i = 0; i < 2; i++) {
        calls.push(chat(stack.url, INTER, `inter-${i}`));
        await eventually(async () => (await waitingOf(stack.url, 'chat', OPERATOR)) === i + 1, `inter-${i} queued`);
      }
      // The console shows the operator the queue per tenant, and a tenant its own.
      type Now = { queues: { tenant: string; priority: string; waiting: number; running: number }[] };
      const nowFor = async (key: string) =>
        ((await (await fetch(`${stack.url}/console/api/v1/now`, { headers: { authorization: `Bearer ${key}` } })).json()) as Now).queues;
      assert.deepEqual(
        (await nowFor(OPERATOR)).sort((a, b) => a.tenant.localeCompare(b.tenant)),
        [
          { tenant: 'nightly', priority: 'batch', waiting: 1, running: 0 },
          { tenant: 'chat', priority: 'interactive', waiting: 2, running: 1 },
        ].sort((a, b) => a.tenant.localeCompare(b.tenant)),
      );
      assert.deepEqual(await nowFor(INTER), [{ tenant: 'chat', priority: 'interactive', waiting: 2, running: 1 }]);
      holder.leave();
      await Promise.all(calls);
      assert.deepEqual(marks(stack.fake), ['inter-0', 'inter-1', 'batch-0']);
    } finally {
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets a client that leaves while queued leave the queue: Ollama never sees its call', async () => {
    const stack = await startStack({ GATEWAY_API_KEYS: `${BATCH},${INTER}`, BACKEND_PARALLEL: '1' });
    stack.fake.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
    try {
      const holder = hold(stack.url, BATCH);
      await eventually(() => stack.fake.requests.some((r) => r.url === '/api/chat'), 'the holding call reaches the fake');
      const ac = new AbortController();
      const gone = chat(stack.url, INTER, 'gone', ac.signal).catch(() => undefined);
      await eventually(async () => (await waiting(stack.url, INTER)) === 1, 'the call queued');
      const stays = chat(stack.url, BATCH, 'stays');
      await eventually(async () => (await waiting(stack.url, BATCH)) === 1, 'the second call queued');
      ac.abort();
      await gone;
      await eventually(async () => (await waiting(stack.url, INTER)) === 0, 'the call left the queue');
      holder.leave();
      assert.equal((await stays).status, 200);
      assert.deepEqual(marks(stack.fake), ['stays']);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'client_cancelled' }), 1);
    } finally {
      await stack.close();
    }
  });

  it('answers 503 with Retry-After in the API family error shape when QUEUE_MAX_WAITING calls wait', async () => {
    const stack = await startStack({ BACKEND_PARALLEL: '1', QUEUE_MAX_WAITING: '1' });
    stack.fake.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
    try {
      const holder = hold(stack.url, 'none');
      await eventually(() => stack.fake.requests.some((r) => r.url === '/api/chat'), 'the holding call reaches the fake');
      const queued = chat(stack.url, 'none', 'queued');
      await eventually(async () => sample(await metricsText(stack.url), 'ollama_gateway_queue_waiting', { tenant: 'anonymous' }) === 1, 'one call waits');
      const native = await chat(stack.url, 'none', 'refused');
      assert.equal(native.status, 503);
      assert.equal(native.headers.get('retry-after'), '1');
      assert.match(((await native.json()) as { error: string }).error, /QUEUE_MAX_WAITING/);
      const openai = await chat(stack.url, 'none', 'refused', undefined, '/v1/chat/completions');
      assert.equal(openai.status, 503);
      assert.equal(openai.headers.get('retry-after'), '1');
      const body = (await openai.json()) as { error: { message: string; type: string } };
      assert.match(body.error.message, /QUEUE_MAX_WAITING/);
      holder.leave();
      assert.equal((await queued).status, 200);
      assert.deepEqual(marks(stack.fake), ['queued']);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'queue_full' }), 1);
    } finally {
      await stack.close();
    }
  });

  it('with two backends, a waiting call goes to whichever backend that can run its model frees first', async () => {
    const both = { onDisk: ['llama3.2:latest', 'qwen3:8b'], loaded: ['llama3.2:latest'] };
    const fakes = await Promise.all([both, both].map(async (models) => Object.assign(await new FakeOllama().start(), { models })));
    for (const f of fakes) f.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
    const gw = await startGatewayFor(fakes.map((f) => f.origin).join(','), {
      OLLAMA_POLL_INTERVAL_SECONDS: '600',
      BACKEND_PARALLEL: '1',
      GATEWAY_API_KEYS: `${BATCH},${INTER}`,
    });
    await gw.gw.poller!.pollNow();
    try {
      const [a, b] = fakes;
      const h1 = hold(gw.url, BATCH, a);
      const h2 = hold(gw.url, BATCH, b);
      await eventually(() => fakes.every((f) => f.requests.some((r) => r.url === '/api/chat')), 'one holding call at each backend');
      const queued = chat(gw.url, INTER, 'queued');
      await eventually(async () => (await waiting(gw.url, INTER)) === 1, 'the call queued');
      h2.leave();
      assert.equal((await queued).status, 200);
      assert.deepEqual([marks(a!), marks(b!)], [[], ['queued']], 'it went to the backend that freed, not the busy one');
      h1.leave();
      await h1.done;
    } finally {
      await gw.close();
      await Promise.all(fakes.map((f) => f.close().catch(() => {})));
    }
  });

  it('with two backends, a call waits for the backend that has its model loaded rather than taking a cold one', async () => {
    const fakes = await Promise.all(
      [
        { onDisk: ['llama3.2:latest', 'qwen3:8b'], loaded: ['llama3.2:latest', 'qwen3:8b'] },
        { onDisk: ['qwen3:8b', 'llama3.2:latest'], loaded: ['qwen3:8b'] },
      ].map(async (models) => Object.assign(await new FakeOllama().start(), { models })),
    );
    for (const f of fakes) f.byModel.set(HOLD_MODEL, () => ({ kind: 'hang' }));
    const gw = await startGatewayFor(fakes.map((f) => f.origin).join(','), {
      OLLAMA_POLL_INTERVAL_SECONDS: '600',
      BACKEND_PARALLEL: '1',
      GATEWAY_API_KEYS: `${BATCH},${INTER}`,
    });
    await gw.gw.poller!.pollNow();
    try {
      const [warm, cold] = fakes;
      // Hold the only backend with llama3.2 loaded (pinned there).
      const holder = hold(gw.url, BATCH, warm);
      await eventually(() => warm!.requests.some((r) => r.url === '/api/chat'), 'the holding call reaches the warm backend');
      const queued = chat(gw.url, INTER, 'queued');
      await eventually(async () => (await waiting(gw.url, INTER)) === 1, 'the call waits although the cold backend is free');
      holder.leave();
      await holder.done;
      assert.equal((await queued).status, 200);
      assert.deepEqual([marks(warm!), marks(cold!)], [['queued'], []]);
    } finally {
      await gw.close();
      await Promise.all(fakes.map((f) => f.close().catch(() => {})));
    }
  });
});
