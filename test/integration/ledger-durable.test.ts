/**
 * The ledger as operators run it: gateway processes (`node dist/src/main.js`) stopped with SIGTERM
 * (nothing recorded is lost) and with `kill -9` (at most the last second is), several writers on
 * one ledger (two workers on one SQLite file; two gateways on one real PostgreSQL), SIGHUP
 * re-reading the tenants file in every worker, and the CLI reading the ledger afterwards.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PostgresStore } from '../../src/ledger/store';
import { FakeOllama } from '../helpers/fake-ollama';
import { storeAnswersSums } from '../helpers/ledger-cases';
import { requirePostgres, startPostgres, type Postgres } from '../helpers/postgres';
import { MAIN, runWorkers, type WorkersProcess } from '../helpers/process';
import { sleep } from '../helpers/wait';

const run = promisify(execFile);

const TENANTS = `tenants:
  - { name: research, keys: [sk-research] }
  - { name: batch, keys: [sk-batch] }
  - { name: webui, keys: [sk-webui], users: { header: X-OpenWebUI-User-Id } }
`;

/** The `pg` package may come from NODE_PATH (a local install outside the repository). */
const nodePath: Record<string, string> = process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {};

async function call(url: string, key: string, user?: string): Promise<void> {
  const res = await fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, ...(user ? { 'x-openwebui-user-id': user } : {}) },
    body: '{"model":"llama3.2","stream":false}',
  });
  assert.equal(res.status, 200);
  await res.text();
}

/** Calls per tenant/user made by `traffic`. */
async function traffic(url: string, made: Map<string, number>, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    for (const [key, tenant, user] of [
      ['sk-research', 'research', undefined],
      ['sk-batch', 'batch', undefined],
      ['sk-webui', 'webui', `user${i % 3}`],
    ] as const) {
      await call(url, key, user);
      const k = `${tenant}/${user ?? ''}`;
      made.set(k, (made.get(k) ?? 0) + 1);
    }
  }
}

async function cliRows(env: Record<string, string>): Promise<Map<string, number>> {
  const { stdout, stderr } = await run(process.execPath, [MAIN, 'usage', '--since', '1d', '--by', 'tenant,user', '--format', 'json'], {
    env: { PATH: process.env.PATH, ...nodePath, ...env },
  });
  assert.equal(stderr, '', 'nothing on stderr');
  const rows = (JSON.parse(stdout) as { rows: { tenant: string; user: string | null; requests: number }[] }).rows;
  return new Map(rows.map((r) => [`${r.tenant}/${r.user ?? ''}`, r.requests]));
}

describe('the SQLite ledger of a gateway process', () => {
  let fake: FakeOllama;
  let dir: string;
  before(async () => {
    fake = await new FakeOllama().start();
    fake.recordRequests = false;
    dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-proc-'));
  });
  after(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every call through SIGTERM and kill -9 (past the batch window), with two workers writing one file, and SIGHUP reloading tenants', async () => {
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    const env = { GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'data'), LEDGER_URL: '' };
    const made = new Map<string, number>();
    let gw: WorkersProcess = await runWorkers(fake.origin, 2, env);
    try {
      await traffic(gw.url, made, 4);
      // SIGTERM right after the last call: the calls since the last batch are written on the way out.
      await gw.stop();
      assert.equal(gw.gw.stderr, '');
      assert.deepEqual(await cliRows(env), made);

      gw = await runWorkers(fake.origin, 2, env);
      writeFileSync(file, `${TENANTS}  - { name: late, keys: [sk-late] }\n`);
      gw.gw.child.kill('SIGHUP');
      // Both workers reload: every connection (spread over the workers) admits the new key.
      for (let admitted = 0; admitted < 20;) {
        const res = await fetch(`${gw.url}/api/tags`, { headers: { authorization: 'Bearer sk-late', connection: 'close' } });
        await res.text();
        admitted = res.status === 200 ? admitted + 1 : 0;
        if (admitted === 0) await sleep(50);
      }
      await call(gw.url, 'sk-late');
      made.set('late/', 1);
      await traffic(gw.url, made, 2);
      // kill -9 after the batch window (1 s): everything was written already.
      await sleep(1500);
      gw.gw.child.kill('SIGKILL');
      await gw.gw.exit;
      assert.deepEqual(await cliRows(env), made);
    } finally {
      gw.gw.child.kill('SIGKILL');
    }
  });
});

describe('the PostgreSQL ledger', { skip: requirePostgres() }, () => {
  let pg: Postgres;
  let fake: FakeOllama;
  let dir: string;
  before(async () => {
    pg = await startPostgres();
    fake = await new FakeOllama().start();
    fake.recordRequests = false;
    dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-pg-'));
  });
  after(async () => {
    await fake?.close();
    pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers the same sums as SQLite, from the same statements', async () => {
    const url = pg.url.replace(/\/postgres$/, '/postgres?options=-c%20search_path%3Dstore_case');
    const admin = new PostgresStore(pg.url);
    // A schema of its own, so the gateways' test below starts from an empty ledger.
    await (admin as unknown as { pool: { query(s: string): Promise<unknown> } }).pool.query('CREATE SCHEMA store_case');
    await admin.close();
    const store = new PostgresStore(url);
    try {
      await storeAnswersSums(store);
    } finally {
      await store.close();
    }
  });

  it('takes the calls of two gateway processes writing one ledger, through SIGTERM and kill -9', async () => {
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    const env = { GATEWAY_TENANTS_FILE: file, LEDGER_URL: pg.url, ...nodePath };
    const made = new Map<string, number>();
    const a = await runWorkers(fake.origin, 1, env);
    const b = await runWorkers(fake.origin, 1, env);
    try {
      await Promise.all([traffic(a.url, made, 5), traffic(b.url, made, 5)]);
      await a.stop();
      assert.equal(a.gw.stderr, '');
      await sleep(1500);
      b.gw.child.kill('SIGKILL');
      await b.gw.exit;
      assert.deepEqual(await cliRows({ LEDGER_URL: pg.url }), made);
    } finally {
      a.gw.child.kill('SIGKILL');
      b.gw.child.kill('SIGKILL');
    }
  });
});
