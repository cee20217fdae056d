/**
 * The console in a real browser (Debian's headless Chromium, driven by playwright-core): after
 * scripted traffic against the fake Ollama, the page shows the models with the counts /metrics
 * has, its charts have points, a recent call opens its phase bar, hostile model names stay text,
 * the page logs no error and asks nothing of any origin but the gateway's. It saves the README's
 * screenshots (test-results/console-{light,dark}.png; docs/ with UPDATE_SCREENSHOTS=1), and signs in when a token is needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { FakeOllama, fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, startGatewayFor, startStack, type TestStack } from '../helpers/gateway';
import { eventually, sleep } from '../helpers/wait';
import { CHROMIUM, CHROMIUM_ARGS, REPO, requireChromium } from '../helpers/tools';

/**
 * Where the screenshots go: `test-results/` (not tracked) on every run; with
 * UPDATE_SCREENSHOTS=1, `docs/`, the README's pictures.
 */
const SHOTS = path.join(REPO, process.env.UPDATE_SCREENSHOTS === '1' ? 'docs' : 'test-results');

const skip = requireChromium();

/** A model name a client chose to be markup: the page must show it as text. */
const HOSTILE = '<img src=x onerror=window.pwned=1>';

async function launch(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  // Loaded here so that a machine without the package still lists the test as skipped.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'gw-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Watches a page: its console errors, uncaught exceptions, and every URL it requested. */
function watch(page: Page): { errors: string[]; urls: string[] } {
  const seen = { errors: [] as string[], urls: [] as string[] };
  page.on('console', (m) => {
    if (m.type() === 'error') seen.errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.errors.push(e.message));
  page.on('request', (r) => seen.urls.push(r.url()));
  return seen;
}

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  await res.arrayBuffer();
};

describe('the console in a browser', { skip, timeout: 120_000 }, () => {
  let s: TestStack;
  let browser: Awaited<ReturnType<typeof launch>>;
  before(async () => {
    // One-second buckets: a few seconds of traffic draw a line rather than a dot.
    s = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '1' }, {}, { bucketMs: 1000, buckets: 30 });
    const messages = [{ role: 'user', content: 'hello' }];
    for (let round = 0; round < 6; round++) {
      await Promise.all([
        post(`${s.url}/api/chat`, { model: 'llama3.2', messages }),
        post(`${s.url}/api/chat`, { model: 'llama3.2', messages }),
        post(`${s.url}/api/generate`, { model: 'qwen3:8b', prompt: 'hello' }),
        post(`${s.url}/v1/chat/completions`, { model: 'llama3.2', stream: true, messages }),
        round % 2 === 0 ? post(`${s.url}/api/chat`, { model: 'no-such-model', messages }) : undefined,
      ]);
      await sleep(600);
    }
    await post(`${s.url}/api/chat`, { model: HOSTILE, messages });
    await post(`${s.url}/api/embed`, { model: 'all-minilm', input: 'hello' });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
  });

  it('shows the models with the counts of /metrics, charts with points, and a call’s phases; nothing but the gateway is asked', async () => {
    const page = await browser.context.newPage();
    const seen = watch(page);
    await page.goto(`${s.url}/console`);
    await page.waitForSelector('#model-table tbody tr[data-model="llama3.2:latest"]');
    // The Now panel: Ollama up, its models in memory.
    await page.waitForSelector('#backends .backend[data-up="up"]');
    await page.waitForSelector('#loaded tbody tr[data-model="llama3.2:latest"]');

    const text = await metricsText(s.url);
    const counted = new Map<string, number>();
    for (const m of text.matchAll(/^ollama_requests_total\{([^}]*)\} (\S+)$/gm)) {
      const model = /model="((?:[^"\\]|\\.)*)"/.exec(m[1]!)![1]!.replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      counted.set(model, (counted.get(model) ?? 0) + Number(m[2]));
    }
    const shown = await page.$$eval('#model-table tbody tr', (rows) =>
      rows.map((r) => [(r as HTMLElement).dataset.model!, r.querySelector('.requests')!.textContent!.replace(/,/g, '')] as const),
    );
    assert.deepEqual(new Map(shown.map(([m, n]) => [m, Number(n)])), counted);
    assert.ok(counted.size >= 5);

    // A client's markup in a model name is text on the page, and nothing ran.
    const hostile = await page.$$eval('#model-table td.model', (cells) => cells.map((c) => c.textContent));
    assert.ok(hostile.some((t) => t?.startsWith(HOSTILE)));
    assert.equal(await page.$('img[src="x"]'), null);
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);

    // The charts have points, and the request rate is above 0 somewhere.
    const requests = await page.$eval('[data-chart="requests"] path[data-series="requests"]', (p) => ({
      d: p.getAttribute('d') ?? '',
      nonzero: Number((p as SVGElement).dataset.nonzero),
    }));
    assert.equal((requests.d.match(/[ML]/g) ?? []).length, 30, 'a point per bucket');
    assert.ok(requests.nonzero >= 3, `traffic in several buckets, got ${requests.nonzero}`);
    const ttft = await page.$eval('[data-chart="ttft"] path[data-series="p50"]', (p) => Number((p as SVGElement).dataset.points));
    assert.ok(ttft >= 3, 'percentiles where there were calls');

    // A native call opens its phase bar: load, prompt evaluation, generation.
    await page.click('#calls tbody tr.row:has(td:text-is("/api/generate"))');
    await page.waitForSelector('#calls tr.detail .phase-bar rect');
    const phases = await page.$$eval('#calls tr.detail .phase-bar rect', (rects) => rects.map((r) => (r as SVGElement).dataset.phase));
    assert.deepEqual(
      phases.filter((p) => p !== 'queue' && p !== 'other'),
      ['load', 'prompt', 'generation'],
    );
    // Where the time goes, for all models.
    assert.ok((await page.$$('#split-bar .phase-bar rect')).length >= 3);

    // Selecting a model narrows the charts to it.
    await page.click('#model-table tbody tr[data-model="qwen3:8b"]');
    await page.waitForFunction(() => (document.getElementById('model-select') as HTMLSelectElement).value === 'qwen3:8b');

    await page.click('#model-table tbody tr[data-model="qwen3:8b"]');
    await page.waitForFunction(() => (document.getElementById('model-select') as HTMLSelectElement).value === '');
    // One gateway process, one backend: no workers note, no backend column.
    assert.equal(await page.$eval('#workers-note', (n) => (n as HTMLElement).hidden), true);
    assert.equal(await page.$eval('#loaded-backend', (n) => (n as HTMLElement).hidden), true);

    // It keeps polling: a new call appears without a reload.
    const before = await page.$$eval('#calls tbody tr.row', (r) => r.length);
    await post(`${s.url}/api/generate`, { model: 'qwen3:8b', prompt: 'again' });
    await page.waitForFunction((n) => document.querySelectorAll('#calls tbody tr.row').length > n, before, { timeout: 10_000 });

    assert.deepEqual(seen.errors, []);
    const origin = new URL(s.url).origin;
    assert.ok(seen.urls.length >= 6);
    assert.deepEqual(
      seen.urls.filter((u) => new URL(u).origin !== origin),
      [],
    );
    await page.close();
  });

  it('switches between light and dark with its toggle', async () => {
    const page = await browser.context.newPage();
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(`${s.url}/console/`);
    await page.waitForSelector('#content:not([hidden])');
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    await page.click('#theme');
    assert.notEqual(await background(), light);
    await page.click('#theme');
    assert.equal(await background(), light);
    await page.close();
  });
});

describe("the README's screenshots, of ordinary traffic", { skip, timeout: 120_000 }, () => {
  it('shows a few models at work, in light and dark', async () => {
    const s = await startStack({ OLLAMA_POLL_INTERVAL_SECONDS: '1' }, {}, { bucketMs: 1000, buckets: 30 });
    const browser = await launch();
    try {
      const chat = (content: string) => [{ role: 'user', content }];
      for (let round = 0; round < 6; round++) {
        await Promise.all([
          post(`${s.url}/api/chat`, { model: 'llama3.2', messages: chat('Summarise the plot of Hamlet in two sentences.') }),
          post(`${s.url}/v1/chat/completions`, { model: 'llama3.2', stream: true, messages: chat('Write a haiku about autumn.') }),
          post(`${s.url}/api/generate`, { model: 'qwen3:8b', prompt: 'Explain what a hash map is.' }),
          round % 3 === 0 ? post(`${s.url}/api/embed`, { model: 'all-minilm', input: 'The quick brown fox' }) : undefined,
        ]);
        await sleep(600);
      }
      const page = await browser.context.newPage();
      await page.goto(`${s.url}/console`);
      await page.waitForSelector('#loaded tbody tr[data-model="llama3.2:latest"]');
      await page.waitForSelector('#model-table tbody tr[data-model="qwen3:8b"]');
      const models = await page.$$eval('#model-table tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.model));
      assert.deepEqual(
        models.filter((m) => m !== undefined && !['llama3.2:latest', 'qwen3:8b', 'all-minilm:latest'].includes(m)),
        [],
        'ordinary models only',
      );
      await page.click('#calls tbody tr.row[data-model="llama3.2:latest"]:has(td:text-is("/api/chat"))');
      await page.waitForSelector('#calls tr.detail');
      await page.evaluate(() => window.scrollTo(0, 0));
      // A laptop's worth of page: Now, Models, the charts, the split and the first calls.
      await page.setViewportSize({ width: 1440, height: 1600 });
      await page.emulateMedia({ colorScheme: 'light' });
      await page.screenshot({ path: path.join(SHOTS, 'console-light.png') });
      await page.emulateMedia({ colorScheme: 'dark' });
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).colorScheme), 'dark');
      await page.screenshot({ path: path.join(SHOTS, 'console-dark.png') });
      await page.close();
    } finally {
      await browser.close();
      await s.close();
    }
  });
});

describe('the console in a browser, several backends', { skip, timeout: 60_000 }, () => {
  it('names the backend of each model in memory, the same model on two backends twice', async () => {
    const [a, b] = [await new FakeOllama().start(), await new FakeOllama().start()];
    const g = await startGatewayFor(`${a.origin},${b.origin}`, { OLLAMA_POLL_INTERVAL_SECONDS: '1' });
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${g.url}/console`);
      await page.waitForSelector('#backends .backend[data-up="up"] + .backend[data-up="up"]');
      await page.waitForFunction(() => document.querySelectorAll('#loaded tbody tr[data-model="llama3.2:latest"]').length === 2);
      assert.equal(await page.$eval('#loaded-backend', (n) => (n as HTMLElement).hidden), false);
      const rows = await page.$$eval('#loaded tbody tr[data-model="llama3.2:latest"] td.backend', (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(rows, [new URL(a.origin).host, new URL(b.origin).host]);
      const origins = await page.$$eval('#backends .backend .origin', (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(origins, [a.origin, b.origin]);
      await page.close();
    } finally {
      await browser.close();
      await g.close();
      await a.close();
      await b.close();
    }
  });
});

describe('the console in a browser, behind a token', { skip, timeout: 60_000 }, () => {
  let s: TestStack;
  let browser: Awaited<ReturnType<typeof launch>>;
  before(async () => {
    s = await startStack({ METRICS_BEARER_TOKEN: 'console-token' });
    await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: [{ role: 'user', content: 'hello' }] });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
  });

  it('asks for the token, refuses a wrong one, and keeps the right one for the tab', async () => {
    const page = await browser.context.newPage();
    const seen = watch(page);
    await page.goto(`${s.url}/console/`);
    await page.waitForSelector('#login:not([hidden])');
    assert.ok(await page.$('#content[hidden]'));
    await page.fill('#token', 'wrong');
    await page.press('#token', 'Enter');
    await page.waitForSelector('#login-error:not([hidden])');
    await page.fill('#token', 'console-token');
    await page.click('#login-form button');
    await page.waitForSelector('#model-table tbody tr[data-model="llama3.2:latest"]');
    await page.reload();
    await page.waitForSelector('#model-table tbody tr[data-model="llama3.2:latest"]');
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    // The refused tries are the browser's 401s, which it reports as failed loads; nothing else.
    assert.deepEqual(
      seen.errors.filter((e) => !/status of 401/.test(e)),
      [],
    );
    await page.close();
  });
});

describe('the console’s Usage view in a browser', { skip, timeout: 120_000 }, () => {
  let s: TestStack;
  let browser: Awaited<ReturnType<typeof launch>>;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'usage-view-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, 'tenants:\n  - { name: research, keys: [sk-research] }\n  - { name: webui, keys: [sk-webui], users: {} }\n');
    s = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: dir, LEDGER_URL: '', METRICS_BEARER_TOKEN: 'op-usage-view' });
    const chat = async (key: string, user?: string) => {
      const res = await fetch(`${s.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, ...(user ? { 'x-openwebui-user-id': user } : {}) },
        body: '{"model":"llama3.2","stream":false}',
      });
      await res.text();
    };
    await chat('sk-research');
    for (const user of ['alice', 'alice', 'bob']) await chat('sk-webui', user);
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows each tenant’s calls, tokens and GPU share from the ledger, and a tenant’s users on a click', async () => {
    const page = await browser.context.newPage();
    const seen = watch(page);
    await page.goto(`${s.url}/console/`);
    // The operator's token sees every tenant.
    await page.fill('#token', 'op-usage-view');
    await page.click('#login-form button');
    // The ledger takes the calls within its batch window (1 s); the view asks every fifth poll.
    await page.waitForSelector('#usage-tenants tbody tr[data-tenant="webui"]', { timeout: 20_000 });
    const usage = (await (await fetch(`${s.url}/console/api/v1/usage?from=7d&by=tenant`, { headers: { authorization: 'Bearer op-usage-view' } })).json()) as {
      rows: { tenant: string; requests: number; output_tokens: number }[];
    };
    const cells = (sel: string) => page.$$eval(`${sel} td`, (tds) => tds.map((td) => td.textContent));
    for (const r of usage.rows) {
      const row = await cells(`#usage-tenants tbody tr[data-tenant="${r.tenant}"]`);
      assert.equal(row[1], String(r.requests), r.tenant);
      assert.equal(row[4], r.output_tokens.toLocaleString('en-US'), r.tenant);
      assert.match(row[7]!, /llama3\.2:latest \(\d+\)/);
    }
    const shares = await page.$$eval('#usage-tenants tbody tr td:nth-child(7)', (tds) => tds.map((td) => parseFloat(td.textContent ?? '')));
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5, `GPU shares add up to 100%: ${shares.join(', ')}`);
    assert.ok(await page.$('#usage-users-card[hidden]'));
    await page.click('#usage-tenants tbody tr[data-tenant="webui"]');
    await page.waitForSelector('#usage-users-card:not([hidden])');
    assert.deepEqual(await page.$$eval('#usage-users tbody tr', (trs) => trs.map((tr) => [tr.children[0]!.textContent, tr.children[1]!.textContent])), [
      ['alice', '2'],
      ['bob', '1'],
    ]);
    // The recent calls carry the tenant and user.
    await page.waitForSelector('#calls tbody tr.row:has(td:text-is("webui · bob"))');
    // A tenant's key sees its own tenant only: research's page lists neither webui nor its users.
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#token', 'sk-research');
    await page.click('#login-form button');
    await page.waitForFunction(
      () => {
        const rows = [...document.querySelectorAll('#usage-tenants tbody tr')].map((tr) => tr.getAttribute('data-tenant'));
        return rows.length === 1 && rows[0] === 'research';
      },
      undefined,
      { timeout: 20_000 },
    );
    await page.waitForSelector('#calls tbody tr.row');
    assert.equal(await page.$('#calls tbody tr.row:has(td:text-is("webui · bob"))'), null);
    // The page's first tries, before signing in, are the browser's 401s; nothing else.
    assert.deepEqual(
      seen.errors.filter((e) => !/status of 401/.test(e)),
      [],
    );
    await page.close();
  });
});

describe('the console’s Tenants panel in a browser', { skip, timeout: 120_000 }, () => {
  const nativeChat = JSON.parse(fixture('chat-nostream.json').toString()) as { prompt_eval_count: number; eval_count: number };
  const CHAT_TOKENS = nativeChat.prompt_eval_count + nativeChat.eval_count;
  /** An end-user id of the characters an id may hold that spells markup once entity-decoded. */
  const ENTITY_USER = '&ltimg/src=x/onerror=window.pwned=1&gt';
  /** The day's budget of `webui`: its four calls use 85% of it, past the 80% mark. */
  const DAY_LIMIT = Math.ceil((4 * CHAT_TOKENS) / 0.85);
  let s: TestStack;
  let browser: Awaited<ReturnType<typeof launch>>;
  let dir: string;
  const chat = async (key: string, user?: string) => {
    const res = await fetch(`${s.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, ...(user ? { 'x-openwebui-user-id': user } : {}) },
      body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
    });
    await res.text();
    return res.status;
  };
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tenants-panel-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(
      file,
      `tenants:
  - { name: capped, keys: [sk-capped], limits: { requests_per_minute: 2 } }
  - name: webui
    keys: [sk-webui]
    priority: batch
    limits: { tokens_per_day: ${DAY_LIMIT} }
    users: { header: X-OpenWebUI-User-Id, limits: { tokens_per_day: ${2 * CHAT_TOKENS} } }
  - { name: plain, keys: [sk-plain] }
`,
    );
    s = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: dir, LEDGER_URL: '', BACKEND_PARALLEL: '1', METRICS_BEARER_TOKEN: 'operator-token' });
    assert.deepEqual([await chat('sk-capped'), await chat('sk-capped'), await chat('sk-capped')], [200, 200, 429]);
    for (const user of ['alice', 'alice', 'bob', ENTITY_USER]) assert.equal(await chat('sk-webui', user), 200);
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows each tenant’s budgets as bars, the one past its limit marked, its end users, and its queue', async () => {
    const page = await browser.context.newPage();
    const seen = watch(page);
    await page.goto(`${s.url}/console/`);
    await page.fill('#token', 'operator-token');
    await page.click('#login-form button');
    await page.waitForSelector('#tenants:not([hidden]) .tenant[data-tenant="capped"]');
    const budget = (tenant: string, limit: string) =>
      page.$eval(`.tenant[data-tenant="${tenant}"] .budget[data-limit="${limit}"]`, (b) => ({
        state: (b as HTMLElement).dataset.state,
        figures: b.querySelector('.budget-figures')!.textContent,
        pill: b.querySelector('.pill')?.textContent ?? null,
        fill: Number(b.querySelector('.budget-bar .fill')!.getAttribute('width')),
        foot: b.querySelector('.budget-foot')!.textContent,
      }));

    // The tenant over its rate: 2 of 2 used, the bar full and red, "limit reached", and when it frees.
    const rpm = await budget('capped', 'requests_per_minute');
    assert.deepEqual(
      { state: rpm.state, figures: rpm.figures, pill: rpm.pill, fill: rpm.fill },
      { state: 'over', figures: '2 of 2 · 100%', pill: 'limit reached', fill: 100 },
    );
    assert.match(rpm.foot!, /^per minute · resets in \d/);
    assert.equal(await page.$eval('.tenant[data-tenant="capped"]', (c) => (c as HTMLElement).dataset.state), 'over');
    assert.equal(await page.$eval('.tenant[data-tenant="webui"]', (c) => (c as HTMLElement).dataset.state), 'warn');

    // The other past 80% of its day: its tokens, the share, marked amber; the bar as long as the share.
    const day = await budget('webui', 'tokens_per_day');
    const used = 4 * CHAT_TOKENS;
    assert.deepEqual(
      { state: day.state, figures: day.figures, pill: day.pill },
      { state: 'warn', figures: `${used} of ${DAY_LIMIT.toLocaleString('en-US')} · ${Math.round((100 * used) / DAY_LIMIT)}%`, pill: '80%+' },
    );
    assert.ok(Math.abs(day.fill - (100 * used) / DAY_LIMIT) < 0.01);
    assert.match(day.foot!, /^per day · resets in /);
    assert.match(await page.$eval('.tenant[data-tenant="webui"] .tenant-head', (h) => h.textContent!), /batch/);

    // Its end users: alice at her limit first; an id that is entity-encoded markup shows as written.
    await page.click('.tenant[data-tenant="webui"] .tenant-users summary');
    const users = await page.$$eval('.tenant[data-tenant="webui"] table.users tbody tr', (rows) =>
      rows.map((r) => [r.children[0]!.textContent, (r.children[1] as HTMLElement).dataset.state]),
    );
    assert.deepEqual(users, [
      ['alice', 'over'],
      [ENTITY_USER, 'ok'],
      ['bob', 'ok'],
    ]);
    assert.match(await page.$eval('.tenant[data-tenant="webui"] .tenant-users summary', (e) => e.textContent!), /^End users: 3 seen · each tokens_per_day /);
    assert.equal(await page.$('.tenant img'), null);
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
    // The users stay open across polls; a tenant without limits or calls has no card.
    await page.waitForResponse((r) => r.url().endsWith('/api/v1/budgets'));
    await page.waitForSelector('.tenant[data-tenant="webui"] table.users');
    assert.equal(await page.$('.tenant[data-tenant="plain"]'), null);
    assert.equal(await page.$eval('.tenant[data-tenant="webui"] details', (d) => (d as HTMLDetailsElement).open), true);

    // The queue: a call holding the one slot, another waiting behind it, then the wait it had.
    s.fake.next({ ...(fixtureBehavior('chat-nostream.json') as Extract<Behavior, { kind: 'body' }>), delayMs: 2500 }, '/api/chat');
    const chats = () => s.fake.requests.filter((r) => r.url === '/api/chat').length;
    const before = chats();
    const first = chat('sk-plain');
    await eventually(() => chats() === before + 1, 'the first call at Ollama');
    const second = chat('sk-plain');
    await page.waitForSelector('.tenant[data-tenant="plain"] .queue-waiting .queue-value:text-is("1")', { timeout: 10_000 });
    assert.equal(await page.$eval('.tenant[data-tenant="plain"] .queue-running .queue-value', (e) => e.textContent), '1');
    await Promise.all([first, second]);
    await page.waitForSelector('.tenant[data-tenant="plain"] .queue-waiting .queue-value:text-is("0")', { timeout: 10_000 });
    const last = await page.$eval('.tenant[data-tenant="plain"] .queue-last', (e) => e.textContent!);
    // The second call waited for the first (2.5 s at Ollama): a wait of seconds, not nothing.
    assert.match(last, /^last wait [1-9][\d.]* s \(.+ ago\)$/);

    await page.evaluate(() => window.scrollTo(0, 0));
    await page.emulateMedia({ colorScheme: 'light' });
    await page.locator('#tenants').screenshot({ path: path.join(REPO, 'test-results', 'console-tenants-light.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.locator('#tenants').screenshot({ path: path.join(REPO, 'test-results', 'console-tenants-dark.png') });
    assert.deepEqual(
      seen.errors.filter((e) => !/status of 401/.test(e)),
      [],
    );
    await page.close();
  });
});
