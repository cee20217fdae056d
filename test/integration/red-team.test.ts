/**
 * Holes a red-team review of the hardened gateway found, one scenario each: request smuggling
 * through `Connection`-named framing headers, a backslash spelling, pipelining floods, the key in
 * `x-api-key` on other paths, silence on an unframed response, a case-variant `model` key, a
 * compressed answer whose client leaves at the last byte, and statuses HTTP does not define.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startGatewayFor, startStack, type GatewayOnly, type TestStack } from '../helpers/gateway';
import { HostileUpstream, head, write, hang } from '../helpers/hostile-upstream';
import { exchange, rawRequest, RawConnection } from '../helpers/raw-client';
import { eventually } from '../helpers/wait';

const CHAT_BODY = '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}';

describe('requests a client crafts', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ MAX_REQUEST_BODY_MB: '0.001', GATEWAY_API_KEYS: 'k1' });
  });
  after(() => stack.close());
  const auth = { authorization: 'Bearer k1' };

  it('cannot smuggle a second request to Ollama by naming Content-Length in Connection', async () => {
    const inner = rawRequest('POST', '/api/chat', {
      body: '{"model":"smuggled","stream":false,"messages":[]}',
      headers: { 'content-type': 'application/json' },
    });
    const outer = Buffer.concat([
      Buffer.from(
        `GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k1\r\nConnection: keep-alive, content-length\r\nContent-Length: ${inner.length}\r\n\r\n`,
      ),
      inner,
    ]);
    const before = stack.fake.requests.length;
    const r = await exchange(stack.gw.port, outer, { responses: 1 });
    assert.equal(r.responses[0]?.status, 200);
    const seen = stack.fake.requests.slice(before);
    assert.deepEqual(
      seen.map((q) => `${q.method} ${q.url}`),
      ['GET /api/tags'],
    );
    assert.equal(seen[0]!.bodyLength, inner.length, 'the body went as the body of the GET, framed');
    // The next caller gets its own answer.
    const res = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: auth, body: CHAT_BODY });
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), fixture('chat-nostream.json'));
  });

  it('cannot walk around the limits with a backslash: /api\\chat is /api/chat', async () => {
    const before = stack.fake.requests.length;
    const big = JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'x'.repeat(4000) }] });
    const r = await exchange(stack.gw.port, rawRequest('POST', '/api\\chat', { body: big, headers: auth }), { responses: 1 });
    assert.equal(r.responses[0]?.status, 413);
    assert.equal(stack.fake.requests.length, before, 'Ollama received nothing');
    const ok = await exchange(stack.gw.port, rawRequest('POST', '/api\\chat', { body: CHAT_BODY, headers: auth }), { responses: 1 });
    assert.equal(ok.responses[0]?.status, 200);
    assert.equal(stack.fake.requests.at(-1)?.url, '/api/chat');
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'unknown', endpoint: '/api/chat', reason: 'body_too_large' }), 1);
  });

  it('never forwards the key in x-api-key, on any path', async () => {
    for (const p of ['/api/tags', '/v1/models', '/v1/messages/count_tokens']) {
      await (await fetch(`${stack.url}${p}`, { headers: { ...auth, 'x-api-key': 'k1' } })).arrayBuffer();
      const got = stack.fake.last(p);
      assert.ok(got, p);
      assert.equal(got.headers['x-api-key'], undefined, p);
      assert.equal(got.headers.authorization, undefined, p);
    }
  });

  it('reads the model as Ollama does: keys match case-insensitively and the last one wins', async () => {
    const res = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: auth,
      body: '{"model":"tiny","Model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
    });
    await res.arrayBuffer();
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'tiny:latest', endpoint: '/api/chat', status: '200' }), undefined);
    assert.ok((sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }) ?? 0) >= 1);
  });
});

describe('pipelined requests', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  it('closes a connection that pipelines more than 16 requests, before they reach Ollama', async () => {
    stack.fake.byModel.set('slowpoke', () => ({ kind: 'hang' }));
    try {
      const one = rawRequest('POST', '/api/chat', { body: '{"model":"slowpoke","messages":[{"role":"user","content":"hi"}]}' });
      const before = stack.fake.requests.length;
      const conn = await RawConnection.open(stack.gw.port);
      await conn.send(Buffer.concat(Array.from({ length: 40 }, () => one)));
      await conn.whenClosed;
      await eventually(() => stack.fake.active === 0, 'every upstream call aborted', 3000);
      assert.ok(stack.fake.requests.length - before <= 16, `${stack.fake.requests.length - before} calls reached Ollama`);
    } finally {
      stack.fake.byModel.delete('slowpoke');
    }
  });

  it('aborts every waiting call to Ollama when the client of pipelined requests goes away', async () => {
    stack.fake.byModel.set('sloth', () => ({ kind: 'hang' }));
    try {
      const one = rawRequest('POST', '/api/chat', { body: '{"model":"sloth","messages":[{"role":"user","content":"hi"}]}' });
      const conn = await RawConnection.open(stack.gw.port);
      await conn.send(Buffer.concat(Array.from({ length: 5 }, () => one)));
      await eventually(() => stack.fake.active === 5, 'five calls at Ollama', 3000);
      conn.destroy();
      await eventually(() => stack.fake.active === 0, 'every call aborted', 3000);
      await eventually(
        async () => sample(await metricsText(stack.url), 'ollama_requests_in_flight', { model: 'sloth:latest', endpoint: '/api/chat' }) === 0,
        'nothing in flight',
        3000,
      );
      assert.equal(
        sample(await metricsText(stack.url), 'ollama_request_errors_total', { model: 'sloth:latest', endpoint: '/api/chat', reason: 'client_cancelled' }),
        5,
      );
    } finally {
      stack.fake.byModel.delete('sloth');
    }
  });
});

describe('answers an upstream crafts', () => {
  let up: HostileUpstream;
  let gw: GatewayOnly;
  before(async () => {
    up = await new HostileUpstream().start();
    gw = await startGatewayFor(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '1' });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('cuts a response with neither length nor chunks that goes silent, after the idle timeout', { timeout: 15_000 }, async () => {
    const line = fixture('chat-stream.ndjson').toString().split('\n')[0] + '\n';
    up.next([write(head(200, { 'content-type': 'application/x-ndjson' })), write(line), hang()], { path: '/api/chat' });
    const t0 = Date.now();
    const r = await exchange(gw.gw.port, rawRequest('POST', '/api/chat', { body: CHAT_BODY.replace('"stream":false,', '') }), { responses: 1, ms: 8000 });
    assert.ok(r.closed, 'the client was cut');
    assert.ok(Date.now() - t0 < 6000, `cut after ${Date.now() - t0} ms`);
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'upstream_timeout' }), 1);
    assert.equal(sample(m, 'ollama_requests_in_flight', { model: 'llama3.2:latest', endpoint: '/api/chat' }), 0);
  });

  it('counts a compressed answer as complete when its client leaves at the last byte', async () => {
    const body = zlib.gzipSync(fixture('chat-nostream.json'));
    up.next(
      [
        write(
          Buffer.concat([
            Buffer.from(head(200, { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'gzip', 'content-length': body.length })),
            body,
          ]),
        ),
      ],
      {
        path: '/api/generate',
      },
    );
    const conn = await RawConnection.open(gw.gw.port);
    await conn.send(rawRequest('POST', '/api/generate', { body: '{"model":"llama3.2","prompt":"hi","stream":false}' }));
    await eventually(() => conn.responses().length === 1 && conn.responses()[0]!.body.length === body.length, 'the whole answer', 3000);
    conn.destroy();
    await eventually(
      async () => sample(await metricsText(gw.url), 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/generate', status: '200' }) === 1,
      'the call counted',
      3000,
    );
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/generate', reason: 'client_cancelled' }) ?? 0, 0);
    assert.equal(sample(m, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }), 31);
  });

  it('records a status HTTP does not define as status="invalid"', async () => {
    up.next([write(head(999, { 'content-type': 'application/json', 'content-length': 2 }) + '{}')], { path: '/api/embed' });
    const r = await exchange(gw.gw.port, rawRequest('POST', '/api/embed', { body: '{"model":"all-minilm","input":"x"}' }), { responses: 1 });
    assert.equal(r.responses[0]?.status, 999);
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'all-minilm:latest', endpoint: '/api/embed', status: 'invalid' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'all-minilm:latest', endpoint: '/api/embed', status: '999' }), undefined);
  });
});
