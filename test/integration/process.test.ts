/**
 * The gateway as users run it: `node dist/src/main.js` (what `npm start` runs), configured by the
 * environment, checking Ollama at start, stopping cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';

const MAIN = path.resolve(__dirname, '..', '..', 'src', 'main.js');

interface Proc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string;
  exit: Promise<number | null>;
}

function run(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, lines: [], stderr: '', exit: new Promise((r) => child.once('exit', (code) => r(code))) };
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      p.lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (c: Buffer) => (p.stderr += c.toString()));
  return p;
}

async function waitFor(p: Proc, msg: string, ms = 5000): Promise<Record<string, unknown>> {
  const until = Date.now() + ms;
  for (;;) {
    const line = p.lines.find((l) => l.msg === msg);
    if (line) return line;
    if (Date.now() > until) assert.fail(`no log line "${msg}"; got ${JSON.stringify(p.lines)} ${p.stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('the gateway process', () => {
  let fake: FakeOllama;
  before(async () => {
    fake = await new FakeOllama().start();
  });
  after(() => fake.close());

  it('refuses a bad setting with one line naming the variable, and exits non-zero', async () => {
    const p = run({ OLLAMA_HOST: 'ftp://nowhere', PORT: '0' });
    assert.equal(await p.exit, 2);
    const lines = p.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /OLLAMA_HOST="ftp:\/\/nowhere" is not valid: expected http:\/\/host:port, https:\/\/host:port or host:port/);
  });

  it('logs Ollama\'s version at start, proxies, writes access lines without prompt text, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const p = run({ OLLAMA_HOST: `127.0.0.1:${fake.port}`, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'debug' });
    try {
      const reach = await waitFor(p, 'Ollama is reachable');
      assert.equal(reach.ollama_version, '0.32.15');
      const secret = 'my secret prompt text';
      const res = await fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: secret }] }),
      });
      assert.equal(res.status, 200);
      const answer = ((await res.json()) as { message: { content: string } }).message.content;
      const access = await waitFor(p, 'request');
      assert.equal(access.method, 'POST');
      assert.equal(access.path, '/api/chat');
      assert.equal(access.status, 200);
      assert.equal(access.model, 'llama3.2:latest');
      assert.equal(access.input_tokens, 37);
      assert.equal(access.output_tokens, 31);
      assert.equal(typeof access.duration_ms, 'number');
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      const all = JSON.stringify(p.lines);
      assert.ok(!all.includes(secret) && !all.includes(answer.slice(0, 30)), 'no prompt or response text in the logs');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('starts and serves even when Ollama is down, warning clearly', async () => {
    const port = await freePort();
    const dead = await freePort();
    const p = run({ OLLAMA_HOST: `http://127.0.0.1:${dead}`, HOST: '127.0.0.1', PORT: String(port) });
    try {
      const warn = await waitFor(p, 'Ollama is not reachable yet; serving anyway, requests will get 502 until it is');
      assert.equal(warn.level, 'warn');
      assert.match(String(warn.reason), /refused the connection/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
      p.child.kill('SIGINT');
      assert.equal(await p.exit, 0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
