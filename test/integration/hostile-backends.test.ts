/**
 * Backends that misbehave on purpose, and what the gateway owes every other user when they do: a
 * listing nested deeper than any serializer takes, an error nothing caught, a trial call its client
 * abandons, a response head that never completes, and a backend that crashes having read a call.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { metricsText, sample, startGatewayFor } from '../helpers/gateway';
import { HostileUpstream, repeat, reply, reset, write } from '../helpers/hostile-upstream';
import { freePort, runGateway } from '../helpers/process';
import { tracked } from '../helpers/procs';
import { eventually, sleep } from '../helpers/wait';

const CHAT_BODY = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false });
const chat = (url: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${url}/api/chat`, { method: 'POST', headers, body: CHAT_BODY, signal });

/** A listing whose one model carries a value nested `depth` arrays deep. */
function nestedListing(depth: number): string {
  return `{"models":[{"name":"deep:latest","model":"deep:latest","details":{"families":${'['.repeat(depth)}${']'.repeat(depth)}}}]}`;
}

describe('a backend whose listing nests deeper than a serializer takes', () => {
  it('is left out of the /api/tags union; the process and every other listing go on', async () => {
    const hostile = await new HostileUpstream().start();
    hostile.on('/api/tags', () => reply(200, 'application/json; charset=utf-8', nestedListing(20_000)));
    hostile.on('/api/ps', () => reply(200, 'application/json; charset=utf-8', '{"models":[]}'));
    hostile.on('/api/version', () => reply(200, 'application/json; charset=utf-8', '{"version":"0.12.0"}'));
    const fake = Object.assign(await new FakeOllama().start(), { models: { onDisk: ['llama3.2:latest'], loaded: [] } });
    const port = await freePort();
    const gw = runGateway({ OLLAMA_HOST: `${hostile.origin},${fake.origin}`, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info' });
    const url = `http://127.0.0.1:${port}`;
    try {
      await gw.waitFor('gateway listening', 15_000);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/api/tags`);
        assert.equal(res.status, 200);
        const names = ((await res.json()) as { models: { name: string }[] }).models.map((m) => m.name);
        assert.deepEqual(names, ['llama3.2:latest']);
        assert.equal(res.headers.get('x-ollama-backends'), `127.0.0.1:${fake.port}`);
      }
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal(gw.child.exitCode, null, `the process ended: ${gw.stderr}`);
      assert.equal(gw.stderr, '');
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exit;
      await hostile.close();
      await fake.close();
    }
  });
});

describe('an error nothing caught', () => {
  /**
   * The last resort as the gateway installs it, in a process of its own: a server whose handlers
   * fail in each way nothing catches, inside and outside a request.
   */
  const SCRIPT = `
    const http = require('node:http');
    const { installLastResort, withinRequest } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'last-resort.js'))});
    const { createLogger } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'logger.js'))});
    const log = createLogger('info', { write: (line) => process.stdout.write(line) });
    installLastResort(log);
    // A timer of the process's own, outside any request (as the poller's are).
    let armed = false;
    setInterval(() => { if (armed) { armed = false; throw new Error('thrown outside any request'); } }, 5);
    const server = http.createServer((req, res) => withinRequest(req, res, () => {
      if (req.url === '/v1/reject') Promise.reject(new Error('rejected inside a request'));
      else if (req.url === '/api/throw') setTimeout(() => { throw new Error('thrown inside a request'); }, 1);
      else if (req.url === '/api/half') { res.writeHead(200, { 'content-type': 'application/x-ndjson' }); res.write('{"a":1}\\n'); setTimeout(() => { throw new Error('thrown mid-answer'); }, 1); }
      else if (req.url === '/outside') { armed = true; res.end('ok'); }
      else res.end('ok');
    }));
    server.listen(0, '127.0.0.1', () => process.send(server.address().port));
  `;

  it('ends the one request it happened in, logs one line, and never ends the process', async () => {
    const child = tracked(spawn(process.execPath, ['-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    try {
      const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
      const url = `http://127.0.0.1:${port}`;
      const rejected = await fetch(`${url}/v1/reject`);
      assert.equal(rejected.status, 500);
      assert.equal(((await rejected.json()) as { error: { type: string } }).error.type, 'api_error', "the OpenAI family's shape");
      const thrown = await fetch(`${url}/api/throw`);
      assert.equal(thrown.status, 500);
      assert.deepEqual(await thrown.json(), { error: 'internal error in the gateway' });
      // An answer already under way is cut, not passed off as whole.
      const half = await fetch(`${url}/api/half`);
      await assert.rejects(half.text());
      assert.equal(await (await fetch(`${url}/outside`)).text(), 'ok');
      await eventually(
        () => out.split('\n').filter((l) => l.includes('nothing caught')).length === 4,
        () => `four last-resort lines: ${out}`,
      );
      assert.equal(await (await fetch(`${url}/fine`)).text(), 'ok');
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(
        lines.map((l) => [l.kind, l.path ?? null, l.error]),
        [
          ['unhandled_rejection', '/v1/reject', 'rejected inside a request'],
          ['uncaught_exception', '/api/throw', 'thrown inside a request'],
          ['uncaught_exception', '/api/half', 'thrown mid-answer'],
          ['uncaught_exception', null, 'thrown outside any request'],
        ],
      );
      assert.equal(child.exitCode, null, `the process ended: ${err}`);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('a trial call its client abandons', () => {
  it('still ends the trial: the cooled backend returns to rotation once its polls succeed', async () => {
    const fakes = await Promise.all(
      [0, 1].map(async () => Object.assign(await new FakeOllama().start(), { models: { onDisk: ['llama3.2:latest'], loaded: ['llama3.2:latest'] } })),
    );
    const [a, b] = fakes;
    const gw = await startGatewayFor(fakes.map((f) => f.origin).join(','), { OLLAMA_POLL_INTERVAL_SECONDS: '600' });
    const aName = `127.0.0.1:${a.port}`;
    const chats = (f: FakeOllama) => f.requests.filter((r) => r.url === '/api/chat').length;
    try {
      await gw.gw.poller!.pollNow();
      // Any client can cool a backend: three 5xx, pinned to it.
      const fail = { kind: 'body' as const, status: 500, contentType: 'application/json', body: Buffer.from('{"error":"boom"}') };
      a.next(fail).next(fail).next(fail);
      for (let i = 0; i < 3; i++) assert.equal((await chat(gw.url, { 'x-ollama-backend': aName })).status, 500);
      assert.ok(gw.logs.some((l) => l.msg === 'backend fails calls; cooling down, calls go elsewhere' && l.backend === aName));
      // After the cool-down and a successful poll, the next call at a is its trial; its client
      // leaves before a answers.
      await sleep(5100);
      await gw.gw.poller!.pollNow();
      a.next({ kind: 'hang' });
      const abort = new AbortController();
      const abandoned = chat(gw.url, { 'x-ollama-backend': aName }, abort.signal).catch(() => 'aborted');
      await eventually(() => chats(a) === 4, 'the trial reached a');
      abort.abort();
      assert.equal(await abandoned, 'aborted');
      await eventually(() => a.abandoned >= 1, 'the gateway dropped the trial at a');
      await gw.gw.poller!.pollNow();
      // Calls are routed to a again: one of them is a new trial, which a answers.
      for (let i = 0; i < 4 && chats(a) === 4; i++) assert.equal((await chat(gw.url)).status, 200);
      assert.ok(chats(a) > 4, `a got no call after the abandoned trial (b got ${chats(b)})`);
      await eventually(() => gw.logs.some((l) => l.msg === 'backend is back in rotation' && l.backend === aName), 'a back in rotation');
      assert.equal(sample(await metricsText(gw.url), 'ollama_backend_healthy', { backend: aName }), 1);
    } finally {
      await gw.close();
      await Promise.all(fakes.map((f) => f.close().catch(() => {})));
    }
  });
});

describe('a response head that never completes', () => {
  const TRICKLES: [string, () => ReturnType<typeof write>[]][] = [
    ['103 Early Hints every 200 ms', () => [repeat('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n', 200)]],
    ['its status line and headers a byte at a time', () => [write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: '), repeat('a', 100)]],
  ];
  for (const [what, script] of TRICKLES) {
    it(`is cut at the deadline with 504 in the family's shape, and frees the call's slot: ${what}`, async () => {
      const up = await new HostileUpstream().start();
      up.on('/api/chat', () => reply(200, 'application/json; charset=utf-8', '{"model":"llama3.2","message":{"role":"assistant","content":"ok"},"done":true}'));
      up.next(script(), { path: '/v1/chat/completions' });
      const gw = await startGatewayFor(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '1', MAX_CONCURRENT_REQUESTS: '1', QUEUE_TIMEOUT_SECONDS: '60' });
      try {
        const res = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
          signal: AbortSignal.timeout(15_000),
        });
        assert.equal(res.status, 504);
        const body = (await res.json()) as { error: { message: string; type: string } };
        assert.match(body.error.message, /did not complete its response head within 1 s \(UPSTREAM_IDLE_TIMEOUT_SECONDS\)/);
        assert.equal(body.error.type, 'api_error');
        // The one slot is free again: the next call is answered.
        assert.equal((await chat(gw.url, {}, AbortSignal.timeout(15_000))).status, 200);
        const m = await metricsText(gw.url);
        assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/v1/chat/completions', reason: 'upstream_timeout' }), 1);
        await eventually(() => up.requests[0]!.connection.closed, 'the upstream connection closed');
      } finally {
        await gw.close();
        await up.close();
      }
    });
  }
});

describe('a backend that reads a whole call and resets', () => {
  it('runs it once: the call is not sent again on a fresh connection, and the client gets 502', async () => {
    const up = await new HostileUpstream().start();
    up.on('/api/chat', () => reply(200, 'application/json; charset=utf-8', '{"model":"llama3.2","message":{"role":"assistant","content":"ok"},"done":true}'));
    const gw = await startGatewayFor(up.origin);
    try {
      // A first call leaves a kept-alive connection, which the second reuses.
      assert.equal((await chat(gw.url)).status, 200);
      up.on('/api/chat', () => [reset()]);
      const before = up.requests.filter((r) => r.path === '/api/chat').length;
      const res = await chat(gw.url);
      assert.equal(res.status, 502);
      assert.match(((await res.json()) as { error: string }).error, /closed the connection before answering/);
      assert.equal(up.connections[0]!.requests.length, 2, 'the second call went out on the kept-alive connection');
      assert.equal(up.requests.filter((r) => r.path === '/api/chat').length - before, 1, 'upstream executions of the one call');
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'upstream_unreachable' }), 1);
    } finally {
      await gw.close();
      await up.close();
    }
  });

  it('still sends a GET again once on a fresh connection (it changes nothing)', async () => {
    const up = await new HostileUpstream().start();
    const gw = await startGatewayFor(up.origin);
    try {
      assert.equal((await fetch(`${gw.url}/api/version`)).status, 200);
      up.next([reset()], { path: '/api/version' });
      const before = up.requests.filter((r) => r.path === '/api/version').length;
      const res = await fetch(`${gw.url}/api/version`);
      assert.equal(res.status, 200);
      assert.equal(up.requests.filter((r) => r.path === '/api/version').length - before, 2, 'the reset attempt and the one on a fresh connection');
    } finally {
      await gw.close();
      await up.close();
    }
  });
});
