/**
 * Access control and limits: API keys in front of an Ollama that has no authentication, a separate
 * token for /metrics, the cap on concurrent calls with a bounded queue, oversized headers, and
 * requests that try to make the gateway connect elsewhere.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { metricsText, sample, startStack } from '../helpers/gateway';

describe('API keys', () => {
  it('refuse a missing or wrong key with 401, admit a right one, and never pass the key to Ollama', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keys-'));
    writeFileSync(path.join(dir, 'keys'), '# team keys\nkey-from-file\n\n');
    const stack = await startStack({ GATEWAY_API_KEYS: 'key-one, key-two', GATEWAY_API_KEYS_FILE: path.join(dir, 'keys') });
    try {
      const chat = (auth?: string) =>
        fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth ? { authorization: auth } : {}, body: '{"model":"llama3.2","stream":false}' });
      const seen = stack.fake.requests.length;
      const missing = await chat();
      assert.equal(missing.status, 401);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
      assert.deepEqual(await missing.json(), { error: 'missing API key: send Authorization: Bearer <key>' });
      const wrong = await chat('Bearer key-three');
      assert.equal(wrong.status, 401);
      assert.deepEqual(await wrong.json(), { error: 'invalid API key' });
      assert.equal((await chat('Basic a2V5LW9uZQ==')).status, 401);
      assert.equal(stack.fake.requests.length, seen, 'Ollama saw none of the refused requests');

      for (const key of ['key-one', 'key-two', 'key-from-file']) {
        const ok = await chat(`Bearer ${key}`);
        assert.equal(ok.status, 200, key);
        await ok.text();
        assert.equal(stack.fake.last('/api/chat')!.headers.authorization, undefined, 'the key is not forwarded');
      }
      // Pass-through paths are protected too.
      assert.equal((await fetch(`${stack.url}/api/tags`)).status, 401);
      assert.equal((await fetch(`${stack.url}/api/tags`, { headers: { authorization: 'Bearer key-one' } })).status, 200);
      // Health stays open; /metrics is not behind the API keys.
      assert.equal((await fetch(`${stack.url}/healthz`)).status, 200);
      const m = await metricsText(stack.url);
      // No header, a Basic header, and the pass-through call without a key.
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'missing', scope: 'api' }), 3);
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'invalid', scope: 'api' }), 1);
      assert.ok(!JSON.stringify(stack.logs).includes('key-one'), 'keys never reach the log');
    } finally {
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("work with the clients' own key settings, and answer /v1 in the OpenAI error shape", async () => {
    const stack = await startStack({ GATEWAY_API_KEYS: 'sk-gateway' });
    try {
      const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-gateway', maxRetries: 0 });
      const res = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
      assert.ok(res.choices[0].message.content);
      const bad = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
      await assert.rejects(
        bad.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
        (err: InstanceType<typeof OpenAI.APIError>) => err.status === 401 && /invalid API key/.test(err.message),
      );
      const ollama = new Ollama({ host: stack.url, headers: { Authorization: 'Bearer sk-gateway' } });
      assert.ok((await ollama.list()).models.length > 0);
    } finally {
      await stack.close();
    }
  });

  it('protect /metrics with METRICS_BEARER_TOKEN, separately', async () => {
    const stack = await startStack({ METRICS_BEARER_TOKEN: 'scrape-me' });
    try {
      // Each refusal names what /metrics wants: the metrics token, not an API key.
      const missing = await fetch(`${stack.url}/metrics`);
      assert.equal(missing.status, 401);
      assert.deepEqual(await missing.json(), { error: 'missing metrics token: send Authorization: Bearer <METRICS_BEARER_TOKEN>' });
      const wrong = await fetch(`${stack.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 401);
      assert.deepEqual(await wrong.json(), { error: 'invalid metrics token (METRICS_BEARER_TOKEN)' });
      const ok = await fetch(`${stack.url}/metrics`, { headers: { authorization: 'Bearer scrape-me' } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /ollama_gateway_auth_failures_total\{reason="invalid",scope="metrics"\} 1/);
      assert.equal((await fetch(`${stack.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${stack.url}/api/version`)).status, 200, 'the API stays open without API keys');
    } finally {
      await stack.close();
    }
  });
});

describe('limits', () => {
  it('queue calls beyond MAX_CONCURRENT_REQUESTS and answer 503 with Retry-After after QUEUE_TIMEOUT_SECONDS', async () => {
    const stack = await startStack({ MAX_CONCURRENT_REQUESTS: '1', QUEUE_TIMEOUT_SECONDS: '0.3' });
    try {
      stack.fake.next({
        kind: 'stall',
        status: 200,
        contentType: 'application/x-ndjson',
        body: Buffer.from(
          '{"model":"llama3.2","created_at":"x","message":{"role":"assistant","content":"a"},"done":false}\n{"model":"llama3.2","created_at":"x","message":{"role":"assistant","content":""},"done":true,"eval_count":1}\n',
        ),
        bytes: 10,
        resumeAfterMs: 600,
      });
      const first = fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2"}' }).then(async (r) => ({
        status: r.status,
        text: await r.text(),
      }));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      const second = await fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","stream":false}' });
      assert.equal(second.status, 503);
      assert.equal(second.headers.get('retry-after'), '1');
      assert.match(((await second.json()) as { error: string }).error, /MAX_CONCURRENT_REQUESTS/);
      assert.ok(Date.now() - t0 >= 280, 'waited for the queue timeout');
      assert.equal((await first).status, 200);
      // The slot is free again.
      const third = await fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","stream":false}' });
      assert.equal(third.status, 200);
      await third.text();
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'queue_timeout' }), 1);
    } finally {
      await stack.close();
    }
  });

  it('answer 431 to oversized headers and keep serving', async () => {
    const stack = await startStack();
    try {
      const res = await fetch(`${stack.url}/api/tags`, { headers: { 'x-big': 'x'.repeat(20_000) } }).catch(() => undefined);
      assert.ok(res === undefined || res.status === 431, `got ${res?.status}`);
      assert.equal((await fetch(`${stack.url}/api/tags`)).status, 200);
    } finally {
      await stack.close();
    }
  });

  it('connect only to OLLAMA_HOST, whatever the request line or Host header says', async () => {
    const stack = await startStack();
    // Something else listening, that must never be reached.
    let reached = 0;
    const other = net.createServer((s) => {
      reached++;
      s.destroy();
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherPort = (other.address() as net.AddressInfo).port;
    try {
      const raw = (request: string) =>
        new Promise<string>((resolve) => {
          const s = net.connect(stack.gw.port, '127.0.0.1', () => s.end(request));
          let out = '';
          s.on('data', (c) => (out += c.toString()));
          s.on('close', () => resolve(out));
          s.on('error', () => resolve(out));
        });
      const before = stack.fake.requests.length;
      await raw(`GET http://127.0.0.1:${otherPort}/api/tags HTTP/1.1\r\nHost: 127.0.0.1:${otherPort}\r\nConnection: close\r\n\r\n`);
      await raw(`GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:${otherPort}\r\nConnection: close\r\n\r\n`);
      await raw(
        `POST http://127.0.0.1:${otherPort}/api/chat HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 35\r\nConnection: close\r\n\r\n{"model":"llama3.2","stream":false}`,
      );
      assert.equal(reached, 0, 'the other server was never contacted');
      assert.equal(stack.fake.requests.length - before, 3, 'every request went to Ollama');
    } finally {
      other.close();
      await stack.close();
    }
  });
});
