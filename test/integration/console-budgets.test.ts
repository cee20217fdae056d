/**
 * The console's budgets API over HTTP, against the real gateway with a tenants file, the SQLite
 * ledger and the fair queue (BACKEND_PARALLEL=1): per tenant its limits with what was used of each
 * and when each resets, its end users' limits, and its place in the queue; a tenant past a limit
 * is marked so; an end-user id is data, never markup.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { startStack, type TestStack } from '../helpers/gateway';
import { eventually } from '../helpers/wait';

const nativeChat = JSON.parse(fixture('chat-nostream.json').toString()) as { prompt_eval_count: number; eval_count: number };
/** What one native chat of the fake Ollama costs a token limit (input plus output). */
export const CHAT_TOKENS = nativeChat.prompt_eval_count + nativeChat.eval_count;

/** Two tenants with limits (one to be run past its rate), end users with limits, one without any. */
export const TENANTS = `
tenants:
  - name: capped
    keys: [sk-capped]
    limits: { requests_per_minute: 2 }
  - name: webui
    keys: [sk-webui]
    weight: 2
    priority: batch
    limits: { tokens_per_day: 100000, rolling: [{ seconds: 30, gpu_seconds: 500 }] }
    users: { header: X-OpenWebUI-User-Id, limits: { tokens_per_day: ${2 * CHAT_TOKENS} } }
  - name: plain
    keys: [sk-plain]
`;

/** An end-user id of the characters an id may hold that spells markup once entity-decoded. */
export const ENTITY_USER = '&ltimg/src=x/onerror=alert&gt';
/** A header value that is markup: not a valid end-user id, so the call is its tenant's alone. */
const MARKUP_USER = '<img src=x onerror=alert(1)>';

interface LimitView {
  name: string;
  measure: string;
  window: string;
  windowSeconds?: number;
  limit: number;
  used: number;
  remaining: number;
  usedRatio: number;
  reached: boolean;
  resetAt: string;
  resetInSeconds: number;
}
interface TenantView {
  tenant: string;
  priority: string;
  weight: number;
  limits: LimitView[];
  users?: { limits: { name: string; limit: number }[]; seen: number; shown: { user: string; limits: LimitView[] }[] };
  queue?: { waiting: number; running: number; longestWaitSeconds: number; lastWait: { seconds: number; secondsAgo: number } | null };
}
interface BudgetsAnswer {
  version: number;
  time: number;
  fairQueue: boolean;
  tenants: TenantView[];
}

export function chat(url: string, key: string, user?: string): Promise<Response> {
  return fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, ...(user === undefined ? {} : { 'x-openwebui-user-id': user }) },
    body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
  });
}

/** The operator's token: it sees every tenant. */
const OPERATOR = 'operator-token';

async function budgets(url: string, key = OPERATOR): Promise<{ res: Response; body: BudgetsAnswer }> {
  const res = await fetch(`${url}/console/api/v1/budgets`, { headers: { authorization: `Bearer ${key}` } });
  return { res, body: (await res.json()) as BudgetsAnswer };
}

const tenantOf = (b: BudgetsAnswer, name: string) => b.tenants.find((t) => t.tenant === name);

describe('the console budgets API', () => {
  let dir: string;
  let s: TestStack;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'console-budgets-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    s = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: dir, LEDGER_URL: '', BACKEND_PARALLEL: '1', METRICS_BEARER_TOKEN: OPERATOR });
    for (let i = 0; i < 3; i++) await (await chat(s.url, 'sk-capped')).text();
    for (const user of ['alice', 'alice', 'bob', ENTITY_USER, MARKUP_USER]) await (await chat(s.url, 'sk-webui', user)).text();
  });
  after(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives a tenant past its rate limit as reached, with what it used and when it resets', async () => {
    const { res, body } = await budgets(s.url);
    assert.equal(res.status, 200);
    assert.equal(body.version, 1);
    const capped = tenantOf(body, 'capped')!;
    assert.equal(capped.limits.length, 1);
    const rpm = capped.limits[0]!;
    assert.deepEqual(
      {
        name: rpm.name,
        measure: rpm.measure,
        window: rpm.window,
        windowSeconds: rpm.windowSeconds,
        limit: rpm.limit,
        used: rpm.used,
        remaining: rpm.remaining,
      },
      { name: 'requests_per_minute', measure: 'requests', window: 'rolling', windowSeconds: 60, limit: 2, used: 2, remaining: 0 },
    );
    assert.equal(rpm.reached, true);
    assert.equal(rpm.usedRatio, 1);
    // The third call was refused: it is not counted, and the window frees when the first call leaves it.
    const resetAt = Date.parse(rpm.resetAt);
    assert.match(rpm.resetAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(resetAt > body.time && resetAt <= body.time + 60_000, rpm.resetAt);
    assert.ok(Math.abs(rpm.resetInSeconds - (resetAt - body.time) / 1000) < 1);
  });

  it("gives a tenant's calendar and rolling limits, and its end users' limits, fullest first", async () => {
    const { body } = await budgets(s.url);
    const webui = tenantOf(body, 'webui')!;
    assert.equal(webui.priority, 'batch');
    assert.equal(webui.weight, 2);
    const day = webui.limits.find((l) => l.name === 'tokens_per_day')!;
    // Every call of the tenant counts, the one whose user header was refused included.
    assert.equal(day.used, 5 * CHAT_TOKENS);
    assert.equal(day.remaining, 100_000 - 5 * CHAT_TOKENS);
    assert.equal(day.reached, false);
    assert.equal(day.window, 'day');
    const midnight = new Date(body.time);
    midnight.setUTCHours(24, 0, 0, 0);
    assert.equal(day.resetAt, midnight.toISOString(), 'the day ends at midnight in the file time zone (UTC)');
    const gpu = webui.limits.find((l) => l.measure === 'gpu_seconds')!;
    assert.deepEqual([gpu.window, gpu.windowSeconds, gpu.limit], ['rolling', 30, 500]);
    assert.ok(gpu.used > 0);

    const users = webui.users!;
    assert.deepEqual(users.limits, [{ name: 'tokens_per_day', measure: 'tokens', window: 'day', limit: 2 * CHAT_TOKENS }]);
    assert.equal(users.seen, 3);
    assert.deepEqual(
      users.shown.map((u) => [u.user, u.limits[0]!.used, u.limits[0]!.reached]),
      [
        ['alice', 2 * CHAT_TOKENS, true],
        [ENTITY_USER, CHAT_TOKENS, false],
        ['bob', CHAT_TOKENS, false],
      ],
    );
    // A tenant without limits and without calls is not listed.
    assert.equal(tenantOf(body, 'plain'), undefined);
  });

  it('keeps an end-user id as data: markup is no id, and an id stays the string it was, as JSON', async () => {
    const { res, body } = await budgets(s.url);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(res.headers.get('content-security-policy')!, /default-src 'self'/);
    const shown = tenantOf(body, 'webui')!.users!.shown.map((u) => u.user);
    assert.ok(shown.includes(ENTITY_USER));
    assert.ok(!shown.some((u) => u.includes('<')), 'markup never became an end user');
  });

  it("shows a tenant's key its own tenant only, the operator's token every tenant", async () => {
    const all = (await budgets(s.url)).body.tenants.map((t) => t.tenant);
    assert.deepEqual(all, ['capped', 'webui']);
    const capped = (await budgets(s.url, 'sk-capped')).body;
    assert.deepEqual(
      capped.tenants.map((t) => t.tenant),
      ['capped'],
    );
    const webui = (await budgets(s.url, 'sk-webui')).body.tenants;
    assert.deepEqual(
      webui.map((t) => [t.tenant, t.users?.shown.length]),
      [['webui', 3]],
    );
    // A tenant with neither limits nor calls sees nothing, not the others.
    assert.deepEqual((await budgets(s.url, 'sk-plain')).body.tenants, []);
    assert.equal((await budgets(s.url, 'sk-wrong')).res.status, 401);
  });

  it("shows each tenant's queue: calls waiting and running while a slot is held, then the wait they had", async () => {
    // One slot: the first call holds it while Ollama answers slowly, the second waits for it.
    s.fake.next({ ...(fixtureBehavior('chat-nostream.json') as Extract<Behavior, { kind: 'body' }>), delayMs: 1500 }, '/api/chat');
    const chats = () => s.fake.requests.filter((r) => r.url === '/api/chat').length;
    const before = chats();
    const first = chat(s.url, 'sk-plain');
    await eventually(() => chats() === before + 1, 'the first call at Ollama');
    const second = chat(s.url, 'sk-plain');
    let held: TenantView['queue'];
    await eventually(async () => {
      held = tenantOf((await budgets(s.url)).body, 'plain')?.queue;
      return held?.waiting === 1;
    }, 'the second call waiting');
    assert.equal(held!.running, 1);
    assert.ok(held!.longestWaitSeconds >= 0);
    await Promise.all([(await first).text(), (await second).text()]);
    const { body } = await budgets(s.url);
    assert.equal(body.fairQueue, true);
    const plain = tenantOf(body, 'plain')!;
    assert.deepEqual(plain.limits, []);
    assert.deepEqual([plain.queue!.waiting, plain.queue!.running], [0, 0]);
    assert.ok(plain.queue!.lastWait!.seconds > 0, 'the second call waited for the slot');
    assert.ok(plain.queue!.lastWait!.secondsAgo >= 0);
  });
});
