/**
 * Who sees whose usage. Two tenants in a real tenants file, a real SQLite ledger, and the operator's
 * METRICS_BEARER_TOKEN: a tenant's key reads its own tenant's rows only (its end users and models
 * included), in JSON and CSV, and gets 403 for another tenant's; the operator reads every tenant's,
 * or one with `tenant=`. The console's recent calls are scoped the same way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startStack, type TestStack } from '../helpers/gateway';
import { eventually } from '../helpers/wait';

const OPERATOR = 'op-5d1c9e7a4b';
const TENANTS = `
tenants:
  - name: alpha
    keys: [sk-alpha]
    users: { header: X-OpenWebUI-User-Id }
  - name: beta
    keys: [sk-beta]
`;

interface UsageBody {
  from: string;
  to: string;
  rows: { tenant?: string; user?: string | null; model?: string; requests: number; output_tokens: number }[];
}

describe('the usage API scoped to the caller', () => {
  let dir: string;
  let stack: TestStack;
  const usage = async (key: string, query: string, headers: Record<string, string> = {}) =>
    fetch(`${stack.url}/console/api/v1/usage?${query}`, { headers: { authorization: `Bearer ${key}`, ...headers } });
  const rowsOf = async (key: string, query: string): Promise<UsageBody['rows']> => {
    const res = await usage(key, query);
    assert.equal(res.status, 200, `${key} ${query}`);
    return ((await res.json()) as UsageBody).rows;
  };
  const sum = (rows: UsageBody['rows']) => rows.reduce((n, r) => n + r.requests, 0);

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'usage-scope-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    stack = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'data'), LEDGER_URL: '', METRICS_BEARER_TOKEN: OPERATOR });
    const chat = async (key: string, user?: string) => {
      const res = await fetch(`${stack.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, ...(user ? { 'x-openwebui-user-id': user } : {}) },
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      });
      assert.equal(res.status, 200);
      await res.text();
    };
    // alpha: alice twice, bob once, once as the app itself; beta: twice.
    for (const user of ['alice', 'alice', 'bob', undefined]) await chat('sk-alpha', user);
    for (let i = 0; i < 2; i++) await chat('sk-beta');
    await eventually(async () => sum(await rowsOf(OPERATOR, 'from=1d')) === 6, 'the ledger has every call');
  });
  after(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a tenant's key with its own tenant's rows only: its users and models, nobody else's", async () => {
    const alpha = await rowsOf('sk-alpha', 'from=1d&by=tenant,user,model');
    assert.deepEqual(
      alpha.map((r) => [r.tenant, r.user, r.model, r.requests]),
      [
        ['alpha', null, 'llama3.2:latest', 1],
        ['alpha', 'alice', 'llama3.2:latest', 2],
        ['alpha', 'bob', 'llama3.2:latest', 1],
      ],
    );
    const beta = await rowsOf('sk-beta', 'from=1d&by=tenant,user');
    assert.deepEqual(
      beta.map((r) => [r.tenant, r.user, r.requests]),
      [['beta', null, 2]],
    );
    // Grouped by model or by nothing, a tenant's sums are still its own.
    assert.equal(sum(await rowsOf('sk-beta', 'from=1d&by=model')), 2);
    assert.equal(sum(await rowsOf('sk-alpha', 'from=1d&by=user&step=hour')), 4);
    // Naming its own tenant is allowed, and changes nothing.
    assert.deepEqual(await rowsOf('sk-alpha', 'from=1d&by=tenant,user,model&tenant=alpha'), alpha);
  });

  it("keeps the CSV answer to the tenant's own rows", async () => {
    const csv = await usage('sk-beta', 'from=1d&by=tenant,user', { accept: 'text/csv' });
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    assert.match(lines[0]!, /^tenant,user,requests,/);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(',').slice(0, 3).join(',')),
      ['beta,,2'],
    );
  });

  it("refuses a tenant's key asking for another tenant with 403, in the console API's JSON shape", async () => {
    for (const query of ['from=1d&tenant=beta', 'from=1d&tenant=beta&format=csv', 'tenant=nobody']) {
      const res = await usage('sk-alpha', query);
      assert.equal(res.status, 403, query);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as { error: string };
      assert.match(body.error, /only its own tenant's usage/);
      assert.ok(!JSON.stringify(body).includes('sk-'), 'no key in the answer');
    }
  });

  it("answers the operator's token with every tenant's rows, or the one tenant= names", async () => {
    assert.deepEqual(
      (await rowsOf(OPERATOR, 'from=1d')).map((r) => [r.tenant, r.requests]),
      [
        ['alpha', 4],
        ['beta', 2],
      ],
    );
    const beta = await rowsOf(OPERATOR, 'from=1d&by=tenant,user&tenant=beta');
    assert.deepEqual(
      beta.map((r) => [r.tenant, r.user, r.requests]),
      [['beta', null, 2]],
    );
    assert.deepEqual(await rowsOf(OPERATOR, 'from=1d&tenant=nobody'), []);
    const bad = await usage(OPERATOR, 'tenant=' + encodeURIComponent('a b'));
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^tenant must be/);
    assert.equal((await usage('sk-nobody', 'from=1d')).status, 401);
  });

  it("shows a tenant's key its own tenant's recent calls only in the console", async () => {
    type Calls = { calls: { tenant?: string; user?: string }[] };
    const calls = async (key: string) =>
      ((await (await fetch(`${stack.url}/console/api/v1/calls`, { headers: { authorization: `Bearer ${key}` } })).json()) as Calls).calls;
    const all = await calls(OPERATOR);
    assert.deepEqual(all.map((c) => c.tenant).sort(), ['alpha', 'alpha', 'alpha', 'alpha', 'beta', 'beta']);
    const beta = await calls('sk-beta');
    assert.deepEqual(
      beta.map((c) => c.tenant),
      ['beta', 'beta'],
    );
    assert.ok(
      (await calls('sk-alpha')).every((c) => c.tenant === 'alpha'),
      "alpha's key sees none of beta's calls",
    );
  });
});
