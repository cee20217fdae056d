/**
 * Two gateway replicas (`node …/src/main.js` processes) on one real PostgreSQL ledger and one tenants
 * file, in front of one fake Ollama whose answers take 100–300 ms and carry a known token count.
 * A tenant hammering both at a fixed concurrency overshoots its `tokens_per_day` budget, or its
 * `requests_per_minute`, by no more than the calls in flight when it was crossed; both replicas
 * refuse once over, and so does a restarted one. While PostgreSQL is down or frozen a replica goes
 * on by its last reading and the calls it saw itself, says so once, and catches up once it is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PostgresStore } from '../../src/ledger/store';
import { FakeOllama, fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { requirePostgres, startPostgres, type Postgres } from '../helpers/postgres';
import { runWorkers, type WorkersProcess } from '../helpers/process';
import { eventually, sleep } from '../helpers/wait';

const answer = JSON.parse(fixture('chat-nostream.json').toString()) as { prompt_eval_count: number; eval_count: number };
/** Tokens of one call, as its budget counts them (input + output). */
const T = answer.prompt_eval_count + answer.eval_count;
/** Calls each replica keeps in flight while hammered. */
const C = 4;
const TOKENS_BUDGET = 30 * T;
const REQUESTS_LIMIT = 30;
const OUTAGE_BUDGET = 6 * T;
/** From a call's end at one replica to the next call at the other: the row's commit takes milliseconds. */
const RELAY_GAP_MS = 200;
/** Tenants of one call's budget, each spent at one replica and tried at the other. */
const RELAYS = [0, 1, 2, 3];
/** The gateway's wait for a budget reading before it uses the last one (server.ts). */
const READ_TIMEOUT_MS = 2000;
const CANNOT_READ = 'budgets cannot read the usage ledger; limits use the last reading and the calls this process has seen';
const READ_AGAIN = 'budgets read the usage ledger again';
const WRITE_FAILED = 'usage ledger write failed; calls wait in memory and are retried';

const TENANTS = `tenants:
  - { name: tokens, keys: [sk-tokens], limits: { tokens_per_day: ${TOKENS_BUDGET} } }
  - { name: requests, keys: [sk-requests], limits: { requests_per_minute: ${REQUESTS_LIMIT} } }
  - { name: outage, keys: [sk-outage], limits: { tokens_per_day: ${OUTAGE_BUDGET} } }
${RELAYS.map((i) => `  - { name: relay${i}, keys: [sk-relay${i}], limits: { tokens_per_day: ${T} } }`).join('\n')}
`;

/** The `pg` package may come from NODE_PATH (a local install outside the repository). */
const nodePath: Record<string, string> = process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {};

const CHAT = '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}';

function chat(url: string, key: string, route: '/api/chat' | '/v1/chat/completions' = '/api/chat'): Promise<Response> {
  return fetch(`${url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: CHAT });
}

interface Refused {
  headers: Headers;
  error: string;
}

/**
 * `perReplica` callers per replica, each calling until its first refusal (at most `maxCalls`):
 * the calls each replica served, and the first refusal each gave.
 */
async function hammer(urls: readonly string[], key: string, perReplica: number, maxCalls = 200): Promise<{ served: number[]; refused: Refused[] }> {
  const served = urls.map(() => 0);
  const refused: (Refused | undefined)[] = urls.map(() => undefined);
  await Promise.all(
    urls.flatMap((url, i) =>
      Array.from({ length: perReplica }, async () => {
        for (let n = 0; n < maxCalls; n++) {
          const res = await chat(url, key);
          if (res.status === 200) {
            await res.text();
            served[i]!++;
            continue;
          }
          const body = await res.text();
          assert.equal(res.status, 429, body);
          refused[i] ??= { headers: res.headers, error: (JSON.parse(body) as { error: string }).error };
          return;
        }
        assert.fail(`replica ${i} never refused ${key}`);
      }),
    ),
  );
  return { served, refused: refused.map((r, i) => r ?? assert.fail(`replica ${i} refused nothing`)) };
}

describe('two gateway replicas on one PostgreSQL ledger', { skip: requirePostgres() }, () => {
  let pg: Postgres;
  let fake: FakeOllama;
  let dir: string;
  let env: Record<string, string>;
  let store: PostgresStore;
  const replicas: WorkersProcess[] = [];
  const urls = () => replicas.map((r) => r.url);

  /** What the ledger holds of `tenant`'s calls that ran (refused ones are rows too, with an error). */
  async function ledger(tenant: string): Promise<{ calls: number; tokens: number }> {
    const rows = await store.usage({ from: Date.now() - 86_400_000, to: Date.now() + 3_600_000, by: ['tenant'], tenant });
    const r = rows[0];
    return r ? { calls: r.requests - r.errors, tokens: r.input_tokens + r.output_tokens } : { calls: 0, tokens: 0 };
  }
  const chatsForwarded = () => fake.requests.filter((r) => r.url === '/api/chat').length;

  before(async () => {
    pg = await startPostgres();
    fake = await new FakeOllama().start();
    // A generation of 100–300 ms: the callers' calls overlap, at each replica and across them.
    const recorded = fixtureBehavior('chat-nostream.json') as Extract<Behavior, { kind: 'body' }>;
    fake.byModel.set('llama3.2', () => ({ ...recorded, delayMs: 100 + Math.floor(Math.random() * 200) }));
    dir = mkdtempSync(path.join(os.tmpdir(), 'replicas-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    // As many slots at Ollama as callers: every caller's call runs at once, none waits in the fair
    // queue (with a tenants file, one per backend by default), so the most calls are in flight.
    env = { GATEWAY_TENANTS_FILE: file, LEDGER_URL: pg.url, BACKEND_PARALLEL: String(C), ...nodePath };
    replicas.push(...(await Promise.all([runWorkers(fake.origin, 1, env), runWorkers(fake.origin, 1, env)])));
    store = new PostgresStore(pg.url);
  });
  after(async () => {
    for (const r of replicas) r.gw.child.kill('SIGKILL');
    await store?.close().catch(() => {});
    await fake?.close();
    pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('hold one tokens_per_day budget: overshoot within the calls in flight at the crossing, both refusing', async (t) => {
    const { served, refused } = await hammer(urls(), 'sk-tokens', C);
    const total = served[0]! + served[1]!;
    await eventually(async () => (await ledger('tokens')).calls === total, 'every served call in the ledger', 5000);
    const { tokens } = await ledger('tokens');
    assert.equal(tokens, total * T, 'each call metered with its tokens');
    const crossing = Math.ceil(TOKENS_BUDGET / T);
    t.diagnostic(
      `tokens_per_day ${TOKENS_BUDGET} (${crossing} calls of ${T} tokens), ${C} callers at each of 2 replicas: served ${served.join(' + ')} = ${total} calls, ` +
        `${tokens} tokens; overshoot ${tokens - TOKENS_BUDGET} tokens, ${total - crossing} calls`,
    );
    assert.ok(served[0]! > 0 && served[1]! > 0, 'both replicas served');
    assert.ok(tokens >= TOKENS_BUDGET, 'nothing refused before the budget was spent');
    // At most every caller's call was in flight when the budget was crossed.
    assert.ok(tokens <= TOKENS_BUDGET + 2 * C * T, `${tokens} tokens > ${TOKENS_BUDGET} + ${2 * C} calls in flight × ${T}`);
    for (const r of refused) {
      assert.match(r.error, /tokens_per_day: limit \d+ tokens/);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      assert.match(r.headers.get('x-ollama-gateway-limit') ?? '', /^tokens_per_day; scope=tenant; reset=/);
    }
    // The OpenAI routes carry the SDK's rate-limit headers, at each replica.
    for (const url of urls()) {
      const res = await chat(url, 'sk-tokens', '/v1/chat/completions');
      assert.equal(res.status, 429);
      await res.text();
      assert.equal(res.headers.get('x-ratelimit-limit-tokens'), String(TOKENS_BUDGET));
      assert.equal(res.headers.get('x-ratelimit-remaining-tokens'), '0');
    }
  });

  it('hold one requests_per_minute limit the same way', async (t) => {
    const { served, refused } = await hammer(urls(), 'sk-requests', C);
    const total = served[0]! + served[1]!;
    await eventually(async () => (await ledger('requests')).calls === total, 'every served call in the ledger', 5000);
    t.diagnostic(
      `requests_per_minute ${REQUESTS_LIMIT}, ${C} callers at each of 2 replicas: served ${served.join(' + ')} = ${total}; overshoot ${total - REQUESTS_LIMIT} calls`,
    );
    assert.ok(total >= REQUESTS_LIMIT, 'nothing refused below the limit');
    assert.ok(total <= REQUESTS_LIMIT + 2 * C, `${total} calls > ${REQUESTS_LIMIT} + ${2 * C} in flight`);
    for (const r of refused) {
      assert.match(r.error, /requests_per_minute: limit 30 requests/);
      assert.match(r.headers.get('x-ollama-gateway-limit') ?? '', /^requests_per_minute; scope=tenant; reset=/);
    }
  });

  it('a call finished at one replica is refused at the other moments later, with no call in flight', async () => {
    // One call spends each budget. The row of a limited tenant's call is written as it ends, not at
    // the writer's next tick (a second): the other replica's next reading holds it.
    for (const i of RELAYS) {
      const [here, there] = i % 2 === 0 ? urls() : urls().reverse();
      const first = await chat(here!, `sk-relay${i}`);
      assert.equal(first.status, 200);
      await first.text();
      await sleep(RELAY_GAP_MS);
      const next = await chat(there!, `sk-relay${i}`);
      assert.equal(next.status, 429, `relay${i}: the other replica admitted a call past the budget ${RELAY_GAP_MS} ms after it was spent`);
      await next.text();
    }
  });

  it('a restarted replica keeps refusing both, forwarding nothing', async () => {
    await replicas[0]!.stop();
    assert.equal(replicas[0]!.gw.stderr, '');
    replicas[0] = await runWorkers(fake.origin, 1, env);
    const was = chatsForwarded();
    for (const key of ['sk-tokens', 'sk-requests']) {
      const res = await chat(replicas[0]!.url, key);
      assert.equal(res.status, 429, key);
      await res.text();
    }
    assert.equal(chatsForwarded(), was, 'nothing reached Ollama');
  });

  it('a replica whose database is down or frozen goes on by its last reading and its own calls, says so once, and catches up', async (t) => {
    const a = replicas[0]!;
    const logged = (msg: string) => a.gw.lines.filter((l) => l.msg === msg).length;
    const took: number[] = [];
    /** One call of the outage tenant at `url`: its status, its time noted. */
    const call = async (url = a.url): Promise<number> => {
      const started = Date.now();
      const res = await chat(url, 'sk-outage');
      await res.text();
      took.push(Date.now() - started);
      return res.status;
    };
    // A call waits at most the read timeout for the ledger (the first of an outage; those after it
    // not at all), then up to 300 ms of generation.
    const prompt = () => assert.ok(Math.max(...took) < READ_TIMEOUT_MS + 1000, `calls took ${took.join(', ')} ms`);

    // The budget is six calls; two are read and written while the ledger is up.
    for (let i = 0; i < 2; i++) assert.equal(await call(), 200);
    await eventually(async () => (await ledger('outage')).calls === 2, 'two calls in the ledger', 5000);

    // Down: connections refused, so every read and write fails at once.
    pg.down();
    for (let i = 0; i < 2; i++) assert.equal(await call(), 200, 'served by the last reading and the calls seen here');
    prompt();
    // The log lines come through a pipe: each is awaited, then counted once more at the end.
    await eventually(() => logged(CANNOT_READ) === 1 && logged(WRITE_FAILED) === 1, 'the outage logged');

    // Back: the writer's retry (every second) writes the two rows that waited. The fifth call is
    // decided by what is in hand while a reading finds the ledger back; that reading counts those
    // rows once, not also as this process's own calls (else the sixth below would be refused).
    pg.up();
    await eventually(async () => (await ledger('outage')).calls === 4, 'the rows that waited written', 10_000);
    assert.equal(await call(), 200);
    await eventually(() => logged(READ_AGAIN) === 1, 'the ledger read again');

    // Frozen: connections open, nothing answered; a reading gives up after the read timeout.
    took.length = 0;
    pg.freeze();
    try {
      assert.equal(await call(), 200, 'the sixth call: five used by the last reading and the calls seen here');
      assert.equal(await call(), 429, 'the seventh: six used');
      prompt();
      await eventually(() => logged(CANNOT_READ) === 2, 'the second outage logged');
    } finally {
      pg.thaw();
    }
    t.diagnostic(`calls while PostgreSQL was frozen took ${took.join(', ')} ms`);

    // Thawed: the waiting row is written; the other replica, which saw none of these calls, refuses.
    await eventually(async () => (await ledger('outage')).calls === 6, 'the sixth call written', 10_000);
    assert.equal(await call(replicas[1]!.url), 429);
    assert.equal(await call(), 429);
    await eventually(() => logged(READ_AGAIN) === 2, 'the ledger read again');
    assert.equal(logged(CANNOT_READ), 2, 'said once per outage');
    assert.equal(logged(WRITE_FAILED), 1, 'said once (the frozen write waited, it did not fail)');
    assert.equal(a.gw.child.exitCode, null, 'still running');
    assert.equal(a.gw.stderr, '');
    assert.equal(logged('budgets could not decide; the call goes ahead'), 0);
  });
});
