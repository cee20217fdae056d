/**
 * Relaying today's Ollama faithfully where the plain path was not enough: a compressing proxy in
 * front of Ollama, silent model downloads, a kept-alive connection Ollama closed at the moment of
 * reuse, and the OLLAMA_HOST forms Ollama accepts (`:port`, a path prefix, a Unix socket).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import OpenAI from 'openai';
import { fixtureBehavior } from '../helpers/fake-ollama';
import { fixture, fixtureMeta } from '../helpers/fixtures';
import { eventually } from '../helpers/wait';
import { metricsText, sample, startGatewayFor, startStack, type GatewayOnly, type TestStack } from '../helpers/gateway';

const CHAT = { model: 'llama3.2:latest', endpoint: '/v1/chat/completions' };

/** A small Ollama stand-in answering with a fixture; `handle` may change what it does per request. */
async function server(handle: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void, listen: number | string = 0): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((r) => (typeof listen === 'string' ? srv.listen(listen, r) : srv.listen(listen, '127.0.0.1', r)));
  return srv;
}

const originOf = (srv: http.Server): string => `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;

function serveFixture(res: http.ServerResponse, file: string, headers: Record<string, string> = {}, encode?: (b: Buffer) => Buffer): void {
  const meta = fixtureMeta(file);
  const body = encode ? encode(fixture(file)) : fixture(file);
  res.writeHead(meta.status, { 'content-type': meta.content_type, ...headers });
  res.end(body);
}

describe('a compressing proxy in front of Ollama', () => {
  let upstream: http.Server;
  let gw: GatewayOnly;
  const seen: (string | undefined)[] = [];
  /** When set, the proxy compresses whatever the request asked for. */
  let ignoreAcceptEncoding = false;
  before(async () => {
    upstream = await server((req, res) => {
      seen.push(req.headers['accept-encoding']);
      const gzip = ignoreAcceptEncoding || /gzip/.test(req.headers['accept-encoding'] ?? '');
      // On /v1 the gateway asked for usage on the client's behalf: the stream has its usage event.
      const file = req.url === '/v1/chat/completions' ? 'openai-chat-stream.sse' : 'chat-stream.ndjson';
      serveFixture(res, file, gzip ? { 'content-encoding': 'gzip' } : {}, gzip ? (b) => zlib.gzipSync(b) : undefined);
    });
    gw = await startGatewayFor(originOf(upstream));
  });
  after(async () => {
    await gw.close();
    upstream.close();
  });

  it('is asked for identity on instrumented routes, so the client gets what Ollama sends and the call is measured', async () => {
    const res = await fetch(`${gw.url}/api/chat`, {
      method: 'POST',
      headers: { 'accept-encoding': 'gzip, deflate, br' },
      body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}',
    });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(seen.at(-1), 'identity');
    assert.equal(res.headers.get('content-encoding'), null);
    assert.deepEqual(body, fixture('chat-stream.ndjson'));
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }), 31);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'stream_error' }) ?? 0, 0);
  });

  it('when it compresses anyway, the bytes reach the client as sent and the decoded stream is measured', async () => {
    ignoreAcceptEncoding = true;
    try {
      const got = await new Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const req = http.request(`${gw.url}/api/generate`, { method: 'POST', headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end('{"model":"llama3.2","prompt":"hi"}');
      });
      assert.equal(got.headers['content-encoding'], 'gzip');
      assert.deepEqual(zlib.gunzipSync(got.body), fixture('chat-stream.ndjson'));
      // The client has every byte as soon as they are relayed; the decoded measurement may finish just after.
      await eventually(
        async () => sample(await metricsText(gw.url), 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }) === 62,
        'the decoded call measured',
        3000,
      );
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/generate', reason: 'stream_error' }) ?? 0, 0);
    } finally {
      ignoreAcceptEncoding = false;
    }
  });

  it('when it compresses a stream the gateway must strip, the client gets the decoded stream without the usage event', async () => {
    ignoreAcceptEncoding = true;
    try {
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const stream = await client.chat.completions.create({ model: 'llama3.2', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      let text = '';
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      const expected = fixture('openai-chat-stream-nousage.sse')
        .toString()
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => (JSON.parse(e.slice(6)) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content ?? '')
        .join('');
      assert.equal(text, expected);
      assert.ok(chunks > 0);
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...CHAT, status: '200' }), 1);
    } finally {
      ignoreAcceptEncoding = false;
    }
  });
});

describe('model downloads', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '0.3' });
  });
  after(() => stack.close());

  it('a pull with "stream": false, silent until it is done, is not cut by the idle timeout', async () => {
    stack.fake.next(
      { kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: Buffer.from('{"status":"success"}'), delayMs: 1200 },
      '/api/pull',
    );
    const res = await fetch(`${stack.url}/api/pull`, { method: 'POST', body: '{"model":"llama3.2","stream":false}' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '{"status":"success"}');
    assert.equal(stack.fake.abandoned, 0);
  });

  it('an LLM call that stays as silent is still cut', async () => {
    stack.fake.next({ ...fixtureBehavior('chat-nostream.json'), delayMs: 1200 } as ReturnType<typeof fixtureBehavior>, '/api/chat');
    const res = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
    });
    assert.equal(res.status, 504);
  });
});

describe('a kept-alive connection Ollama closed as the gateway reused it', () => {
  let upstream: http.Server;
  let gw: GatewayOnly;
  let served = 0;
  let dropped = 0;
  before(async () => {
    const perSocket = new WeakMap<Socket, number>();
    upstream = await server((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      // The second request on a connection meets a connection that is already going away.
      if (n === 2) {
        dropped++;
        req.socket.destroy();
        return;
      }
      served++;
      serveFixture(res, 'chat-nostream.json');
    });
    gw = await startGatewayFor(originOf(upstream));
  });
  after(async () => {
    await gw.close();
    upstream.close();
  });

  it('a GET is sent once more on a fresh connection, transparently; an LLM call Ollama had whole is not', async () => {
    const chat = () =>
      fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      });
    // Connection 1: a call, then a GET that meets it going away and goes again on connection 2.
    const first = await chat();
    assert.equal(first.status, 200);
    assert.deepEqual(Buffer.from(await first.arrayBuffer()), fixture('chat-nostream.json'));
    const tags = await fetch(`${gw.url}/api/tags`);
    assert.equal(tags.status, 200, 'the GET, sent again');
    await tags.arrayBuffer();
    assert.deepEqual([served, dropped], [2, 1]);
    // Connection 2's second request is a call: Ollama read it whole, so it may have run; it is
    // not run again.
    const second = await chat();
    assert.equal(second.status, 502);
    await second.arrayBuffer();
    assert.deepEqual([served, dropped], [2, 2]);
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'upstream_unreachable' }), 1);
  });
});

describe('OLLAMA_HOST forms Ollama accepts', () => {
  it('a path prefix (Ollama behind a reverse proxy at /ollama): every path is sent under it', async () => {
    const paths: string[] = [];
    const upstream = await server((req, res) => {
      paths.push(req.url ?? '');
      if (req.url === '/ollama/api/chat') serveFixture(res, 'chat-nostream.json');
      else if (req.url === '/ollama/api/version') serveFixture(res, 'version.json');
      else serveFixture(res, 'root.txt', {}, () => Buffer.from('404 page not found'));
    });
    const gw = await startGatewayFor(`${originOf(upstream)}/ollama/`);
    try {
      const res = await fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
      assert.deepEqual(paths, ['/ollama/api/chat', '/ollama/api/version']);
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  it('a Unix socket (unix:///path)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-sock-'));
    const sock = path.join(dir, 'ollama.sock');
    const hosts: (string | undefined)[] = [];
    const upstream = await server((req, res) => {
      hosts.push(req.headers.host);
      serveFixture(res, req.url === '/api/version' ? 'version.json' : 'chat-nostream.json');
    }, sock);
    const gw = await startGatewayFor(`unix://${sock}`);
    try {
      const res = await fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      });
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), fixture('chat-nostream.json'));
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
      assert.deepEqual(hosts, ['localhost', 'localhost']);
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }), 31);
    } finally {
      await gw.close();
      upstream.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(':port means 127.0.0.1 on that port', async () => {
    const upstream = await server((_req, res) => serveFixture(res, 'chat-nostream.json'));
    const gw = await startGatewayFor(`:${(upstream.address() as AddressInfo).port}`);
    try {
      const res = await fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await gw.close();
      upstream.close();
    }
  });
});
