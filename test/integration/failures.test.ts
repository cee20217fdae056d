/**
 * Every failure the gateway must survive: a dead or silent Ollama, broken streams, clients that
 * leave, oversized and malformed bodies. Each answer is checked, each is counted, and the gateway
 * keeps serving afterwards.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { fixtureBehavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { closedPort } from '../helpers/procs';
import { eventually } from '../helpers/wait';

const CHAT = { model: 'llama3.2:latest', endpoint: '/api/chat' };

interface Result {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the response broke off instead of ending. */
  error?: string;
}

function post(url: string, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error: err.message }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function stillServing(stack: TestStack): Promise<void> {
  const res = await fetch(`${stack.url}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","stream":false}' });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
}

describe('when Ollama cannot be reached', () => {
  let stack: TestStack;
  let origin: string;
  before(async () => {
    origin = `http://127.0.0.1:${await closedPort()}`;
    stack = await startStack({ OLLAMA_HOST: origin });
  });
  after(() => stack.close());

  it('answers 502 with an Ollama-style error naming the upstream, counts and logs it', async () => {
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(res.status, 502);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(res.body.toString()), { error: `Ollama at ${origin} refused the connection` });
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...CHAT, status: '502' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'upstream_unreachable' }), 1);
    const line = stack.logs.find((l) => l.error === 'upstream_unreachable');
    assert.equal(line?.level, 'error');
    assert.equal(line?.status, 502);
  });

  it('answers 502 in the OpenAI error shape on /v1', async () => {
    const res = await post(stack.url, '/v1/chat/completions', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(res.status, 502);
    const body = JSON.parse(res.body.toString()) as { error: { message: string; type: string } };
    assert.equal(body.error.type, 'api_error');
    assert.match(body.error.message, /refused the connection/);
  });

  it('answers 502 on pass-through paths too, and /readyz says why it is not ready', async () => {
    const tags = await fetch(`${stack.url}/api/tags`);
    assert.equal(tags.status, 502);
    assert.match(((await tags.json()) as { error: string }).error, /refused the connection/);
    const ready = await fetch(`${stack.url}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { status: string; reason: string };
    assert.equal(body.status, 'unavailable');
    assert.match(body.reason, /refused the connection/);
    assert.equal((await fetch(`${stack.url}/healthz`)).status, 200);
  });
});

describe('when Ollama misbehaves', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '0.3', MAX_REQUEST_BODY_MB: '0.01' });
  });
  after(() => stack.close());

  it('answers 502 when Ollama closes the connection without answering', async () => {
    stack.fake.next({ kind: 'reset' });
    const res = await post(stack.url, '/api/generate', '{"model":"llama3.2","prompt":"x"}');
    assert.equal(res.status, 502);
    assert.match(JSON.parse(res.body.toString()).error, /closed the connection before answering/);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/generate', reason: 'upstream_unreachable' }), 1);
    await stillServing(stack);
  });

  it('answers 504 when Ollama stays silent longer than the idle timeout, and stops waiting on it', async () => {
    stack.fake.next({ kind: 'hang' });
    const abandoned = stack.fake.abandoned;
    const t0 = Date.now();
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    const took = Date.now() - t0;
    assert.equal(res.status, 504);
    assert.match(JSON.parse(res.body.toString()).error, /sent nothing for 0.3 s/);
    assert.ok(took >= 280 && took < 2000, `answered after ${took} ms`);
    await eventually(() => stack.fake.abandoned === abandoned + 1, 'upstream request aborted');
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...CHAT, status: '504' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'upstream_timeout' }), 1);
    await stillServing(stack);
  });

  it('never cuts a long generation that keeps streaming', async () => {
    // 17 lines, 100 ms apart: 1.6 s in all, far beyond the 0.3 s idle timeout.
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('generate-stream.ndjson'), gapMs: 100 });
    const res = await post(stack.url, '/api/generate', '{"model":"llama3.2","prompt":"x"}');
    assert.equal(res.error, undefined);
    assert.deepEqual(res.body, fixture('generate-stream.ndjson'));
  });

  it('cuts a stream that goes silent mid-way, so the client sees it end early, and counts a timeout', async () => {
    const body = fixture('chat-stream.ndjson');
    const before = sample(await metricsText(stack.url), 'ollama_request_errors_total', { ...CHAT, reason: 'upstream_timeout' }) ?? 0;
    stack.fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body, bytes: 400 });
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(res.status, 200);
    assert.ok(res.error, 'the client must see the stream break off');
    assert.deepEqual(res.body, body.subarray(0, 400));
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'upstream_timeout' }), before + 1);
  });

  it('passes a stream that resets mid-way on as a broken response and counts a stream error', async () => {
    const body = fixture('chat-stream.ndjson');
    stack.fake.next({ kind: 'reset-after', status: 200, contentType: 'application/x-ndjson', body, bytes: 700 });
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.ok(res.error, 'the client must see the stream break off');
    assert.deepEqual(res.body, body.subarray(0, 700));
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'stream_error' }), 1);
    await stillServing(stack);
  });

  it('forwards an error line inside a 200 stream unchanged and records a stream error', async () => {
    stack.fake.next(fixtureBehavior('error-midstream.ndjson'));
    const res = await post(stack.url, '/api/generate', '{"model":"llama3.2","prompt":"Tell me a long story"}');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, fixture('error-midstream.ndjson'));
    const m = await metricsText(stack.url);
    const G = { model: 'llama3.2:latest', endpoint: '/api/generate' };
    assert.equal(sample(m, 'ollama_request_errors_total', { ...G, reason: 'stream_error' }), 1);
    const line = stack.logs.find((l) => l.path === '/api/generate' && l.error === 'stream_error');
    assert.match(String(line?.detail), /unexpected EOF/);
  });

  it('records a stream that ends without its done line as a stream error', async () => {
    const body = fixture('chat-stream.ndjson');
    const truncated = body.subarray(0, body.lastIndexOf('\n', body.length - 2) + 1);
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: truncated });
    const before = sample(await metricsText(stack.url), 'ollama_request_errors_total', { ...CHAT, reason: 'stream_error' }) ?? 0;
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.deepEqual(res.body, truncated);
    assert.equal(sample(await metricsText(stack.url), 'ollama_request_errors_total', { ...CHAT, reason: 'stream_error' }), before + 1);
  });

  it('forwards a line that is not JSON unchanged, records the error and still reads the statistics', async () => {
    const good = fixture('chat-stream.ndjson');
    const nl = good.indexOf('\n') + 1;
    const body = Buffer.concat([good.subarray(0, nl), Buffer.from('not json at all\n'), good.subarray(nl)]);
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body });
    const m0 = await metricsText(stack.url);
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.deepEqual(res.body, body);
    const m = await metricsText(stack.url);
    assert.equal(
      sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'stream_error' }),
      (sample(m0, 'ollama_request_errors_total', { ...CHAT, reason: 'stream_error' }) ?? 0) + 1,
    );
    assert.equal(
      sample(m, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }),
      (sample(m0, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' }) ?? 0) + 31,
    );
  });

  it('passes a 500 from Ollama through unchanged and counts it', async () => {
    stack.fake.next({
      kind: 'body',
      status: 500,
      contentType: 'application/json; charset=utf-8',
      body: Buffer.from('{"error":"llama runner process has terminated"}'),
    });
    const res = await post(stack.url, '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    assert.equal(res.status, 500);
    assert.equal(res.body.toString(), '{"error":"llama runner process has terminated"}');
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...CHAT, reason: 'upstream_5xx' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { ...CHAT, status: '500' }), 1);
  });

  it('passes a 400 from Ollama through unchanged and counts it', async () => {
    const res = await post(stack.url, '/api/chat', '{"messages":[{"role":"user","content":"Hello"}]}');
    assert.equal(res.status, 400);
    assert.deepEqual(res.body, fixture('error-bad-request.json'));
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'unknown', endpoint: '/api/chat', reason: 'upstream_4xx' }), 1);
  });

  it('forwards a body that is not JSON unchanged and records it with model unknown', async () => {
    const raw = '{"model": "llama3.2", oops';
    const res = await post(stack.url, '/api/generate', raw);
    assert.equal(res.status, 400);
    assert.equal(stack.fake.last('/api/generate')!.body.toString(), raw);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'unknown', endpoint: '/api/generate', status: '400' }), 1);
  });

  it('answers 413 to a body over MAX_REQUEST_BODY_MB, declared or chunked, without bothering Ollama', async () => {
    const seen = stack.fake.requests.length;
    const big = JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(20_000) });
    const declared = await post(stack.url, '/api/generate', big);
    assert.equal(declared.status, 413);
    assert.match(JSON.parse(declared.body.toString()).error, /request body exceeds the gateway's limit of 10 KiB|limit/);
    const chunked = await post(stack.url, '/v1/chat/completions', big, { 'transfer-encoding': 'chunked' });
    assert.equal(chunked.status, 413);
    assert.equal((JSON.parse(chunked.body.toString()) as { error: { type: string } }).error.type, 'invalid_request_error');
    assert.equal(stack.fake.requests.length, seen);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'unknown', endpoint: '/api/generate', reason: 'body_too_large' }), 1);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'unknown', endpoint: '/v1/chat/completions', status: '413' }), 1);
    await stillServing(stack);
  });
});

describe('when the client hangs up mid-stream', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  it('aborts the upstream request at once, counts the request, and leaks nothing', async () => {
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-thinking-stream.ndjson'), gapMs: 50 });
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${stack.url}/api/chat`, { method: 'POST' }, (res) => {
        let n = 0;
        res.on('data', () => {
          if (++n === 3) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {});
      req.on('close', () => resolve());
      req.end('{"model":"qwen3:8b","messages":[{"role":"user","content":"hi"}]}');
      setTimeout(() => reject(new Error('stream never started')), 3000).unref();
    });
    // 72 lines at 50 ms would take 3.6 s; the fake must see its client leave well before that.
    await eventually(() => stack.fake.abandoned === 1, 'the fake Ollama sees its request abandoned', 1000);
    await stack.fake.idle();
    const Q = { model: 'qwen3:8b', endpoint: '/api/chat' };
    await eventually(async () => sample(await metricsText(stack.url), 'ollama_requests_total', { ...Q, status: '200' }) === 1, 'request counted');
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...Q, reason: 'client_cancelled' }), 1);
    assert.equal(sample(m, 'ollama_requests_in_flight', Q), 0);
    await stillServing(stack);
  });

  it('counts a client that leaves before Ollama answered', async () => {
    stack.fake.next({ kind: 'hang' });
    const req = http.request(`${stack.url}/api/generate`, { method: 'POST' });
    req.on('error', () => {});
    req.end('{"model":"llama3.2","prompt":"x"}');
    await eventually(() => stack.fake.active === 1, 'request reached Ollama');
    req.destroy();
    await eventually(() => stack.fake.active === 0, 'upstream request aborted');
    const G = { model: 'llama3.2:latest', endpoint: '/api/generate' };
    await eventually(async () => sample(await metricsText(stack.url), 'ollama_requests_total', { ...G, status: '499' }) === 1, 'request counted as 499');
  });
});
