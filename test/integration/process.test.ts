/**
 * The gateway as users run it: `node dist/src/main.js` (what `npm start` runs), configured by the
 * environment, checking Ollama at start, stopping cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { OtlpReceiver } from '../helpers/otlp-receiver';
import { freePort, runGateway as run } from '../helpers/process';

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

  it("logs Ollama's version at start, proxies, writes access lines without prompt text, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const p = run({ OLLAMA_HOST: `127.0.0.1:${fake.port}`, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'debug' });
    try {
      const reach = await p.waitFor('Ollama is reachable');
      assert.equal(reach.ollama_version, '0.32.15');
      const secret = 'my secret prompt text';
      const res = await fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: secret }] }),
      });
      assert.equal(res.status, 200);
      const answer = ((await res.json()) as { message: { content: string } }).message.content;
      const access = await p.waitFor('request');
      assert.equal(access.method, 'POST');
      assert.equal(access.path, '/api/chat');
      assert.equal(access.status, 200);
      assert.equal(access.model, 'llama3.2:latest');
      assert.equal(access.input_tokens, 37);
      assert.equal(access.output_tokens, 31);
      assert.equal(typeof access.duration_ms, 'number');
      const detail = await p.waitFor('call detail');
      assert.equal(detail.level, 'debug');
      const stats = JSON.parse(fixture('chat-nostream.json').toString()) as { eval_duration: number; load_duration: number };
      assert.equal(detail.eval_duration_ns, stats.eval_duration);
      assert.equal(detail.load_duration_ns, stats.load_duration);
      assert.deepEqual(detail.finish_reasons, ['stop']);
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
      const warn = await p.waitFor('Ollama is not reachable yet; serving anyway, requests will get 502 until it is');
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

describe('shutdown', () => {
  it('on SIGTERM refuses new connections, lets an in-flight stream finish, flushes its span and exits 0', async () => {
    const fake = await new FakeOllama().start();
    const receiver = await new OtlpReceiver().start();
    const port = await freePort();
    const p = run({
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Longer than the test: only the final flush can deliver the span.
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    });
    try {
      await p.waitFor('gateway listening');
      const body = fixture('generate-stream.ndjson');
      fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body, gapMs: 60 });
      const streamed = new Promise<Buffer>((resolve, reject) => {
        const req = http.request(`http://127.0.0.1:${port}/api/generate`, { method: 'POST', agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.once('data', () => p.child.kill('SIGTERM'));
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end('{"model":"llama3.2","prompt":"x"}');
      });
      await p.waitFor('shutting down: draining in-flight requests');
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'no new connections once draining');
      assert.deepEqual(await streamed, body, 'the in-flight stream ran to completion');
      assert.equal(await p.exit, 0);
      assert.ok(
        receiver.spans.some((s) => s.name === 'text_completion llama3.2'),
        "the in-flight call's span was flushed before exit",
      );
    } finally {
      p.child.kill('SIGKILL');
      await receiver.close();
      await fake.close();
    }
  });

  it('cuts streams still running when SHUTDOWN_GRACE_SECONDS is over, and exits 0', async () => {
    const fake = await new FakeOllama().start();
    const port = await freePort();
    const p = run({ OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port), SHUTDOWN_GRACE_SECONDS: '0.3' });
    try {
      await p.waitFor('gateway listening');
      fake.next({ kind: 'hang' });
      const outcome = new Promise<string>((resolve) => {
        const req = http.request(`http://127.0.0.1:${port}/api/chat`, { method: 'POST', agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(`ended ${res.statusCode}`));
          res.on('error', () => resolve('cut'));
        });
        req.on('error', () => resolve('cut'));
        req.end('{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
      });
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      assert.ok(Date.now() - t0 < 3000, 'exited soon after the grace period');
      assert.equal(await outcome, 'cut');
    } finally {
      p.child.kill('SIGKILL');
      await fake.close();
    }
  });
});
