/**
 * GATEWAY_WORKERS=2: two worker processes on one port. Whichever worker takes a scrape, /metrics
 * is the whole gateway's: every call counted once, Ollama's state gauges once, a valid exposition;
 * a worker that dies is replaced and what it counted stays in the sums.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { sample } from '../helpers/gateway';
import { runWorkers, type GatewayProcess, type WorkersProcess } from '../helpers/process';
import { childPids } from '../helpers/procs';
import { requireTool } from '../helpers/tools';

/** One call on a connection of its own (`agent: false`), so the primary hands the calls to both workers in turn. */
const chat = (port: number) =>
  new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/chat', method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'hi' }] }));
  });

const scrape = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200);
  return res.text();
};

const requests = (text: string) => sample(text, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }) ?? 0;

async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('several workers on one port', () => {
  let fake: FakeOllama;
  let w: WorkersProcess;
  let gw: GatewayProcess;
  let port: number;
  before(async () => {
    fake = await new FakeOllama().start();
    w = await runWorkers(`127.0.0.1:${fake.port}`, 2, { OLLAMA_POLL_INTERVAL_SECONDS: '0.2' });
    ({ gw, port } = w);
  });
  after(async () => {
    await w.stop();
    await fake.close();
  });

  it('announces itself once, with the number of workers', () => {
    const listening = gw.lines.filter((l) => l.msg === 'gateway listening');
    assert.equal(listening.length, 1);
    assert.equal(listening[0]!.workers, 2);
  });

  it('serves calls from both workers and sums them in every scrape', async () => {
    for (let i = 0; i < 20; i++) assert.equal(await chat(port), 200);
    // Access lines are written in batches (at least every 500 ms): wait for all 20.
    const served = () => gw.lines.filter((l) => l.msg === 'request');
    await until('the access lines', async () => served().length === 20);
    assert.deepEqual([...new Set(served().map((l) => l.worker))].sort(), [0, 1], 'both workers served calls');
    // Several scrapes, landing on either worker, all agree.
    for (let i = 0; i < 6; i++) assert.equal(requests(await scrape(port)), 20);
  });

  it("shows Ollama's state once, from the polling worker, and the exposition is valid", async () => {
    await until('ollama_up', async () => sample(await scrape(port), 'ollama_up') === 1);
    const text = await scrape(port);
    assert.equal(text.split('\n').filter((l) => l.startsWith('ollama_up')).length, 1);
    assert.equal(text.split('\n').filter((l) => l.startsWith('ollama_build_info')).length, 1);
    assert.equal(text.split('\n').filter((l) => l.startsWith('target_info')).length, 1);
    if (requireTool('promtool')) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);
    }
  });

  it('replaces a worker that dies, and keeps what it had counted', async () => {
    const before = requests(await scrape(port));
    await scrape(port); // both workers have reported their pieces
    await scrape(port);
    const workers = childPids(gw.child.pid!);
    assert.equal(workers.length, 2);
    process.kill(workers[0]!, 'SIGKILL');
    await until('a replacement worker', async () => {
      const now = childPids(gw.child.pid!);
      return now.length === 2 && !now.includes(workers[0]!);
    });
    await until('the new worker to listen', async () => gw.lines.some((l) => l.msg === 'a worker exited; starting another in its place'));
    // Never less than before: the dead worker's counts stay in the sum.
    for (let i = 0; i < 4; i++) assert.ok(requests(await scrape(port)) >= before, 'a counter went back');
    for (let i = 0; i < 10; i++) assert.equal(await chat(port), 200);
    await until('the new calls to be counted', async () => requests(await scrape(port)) === before + 10);
  });

  it('replaces a worker that dies, and its console keeps the calls it had recorded', async () => {
    const consoleTotals = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/console/api/v1/models?minutes=60`, { headers: { connection: 'close' } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { all: { totals: { requests: number; inputTokens: number; outputTokens: number } } };
      return body.all.totals;
    };
    // Both workers serve some of these (a connection each), and the console gathers both.
    for (let i = 0; i < 6; i++) assert.equal(await chat(port), 200);
    const before = await consoleTotals();
    assert.ok(before.requests >= 6);
    const workers = childPids(gw.child.pid!);
    const exits = gw.lines.filter((l) => l.msg === 'a worker exited; starting another in its place').length;
    process.kill(workers[1]!, 'SIGKILL');
    await until('a replacement worker', async () => {
      const now = childPids(gw.child.pid!);
      return now.length === 2 && !now.includes(workers[1]!);
    });
    await until('the exit to be seen', async () => gw.lines.filter((l) => l.msg === 'a worker exited; starting another in its place').length > exits);
    assert.deepEqual(await consoleTotals(), before, "the dead worker's calls stay in the console");
    for (let i = 0; i < 4; i++) assert.equal(await chat(port), 200);
    await until('the new calls to be shown', async () => (await consoleTotals()).requests === before.requests + 4);
  });
});
