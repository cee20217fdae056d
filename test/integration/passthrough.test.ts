/**
 * Transparency: every fixture exchange arrives through the gateway as Ollama sent it (status,
 * Content-Type, framing, bytes) under every chunking, streams arrive line by line, uploads stream,
 * and the gateway behaves as a proper HTTP proxy (Host, hop-by-hop headers, keep-alive).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fixtureBehavior, type Chunking } from '../helpers/fake-ollama';
import { fixture, fixtureManifest } from '../helpers/fixtures';
import { startStack, type TestStack } from '../helpers/gateway';

interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Arrival time (ms since the request was sent) of each body chunk. */
  arrivals: number[];
}

function exchange(url: string, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url + path, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      const arrivals: number[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        arrivals.push(performance.now() - t0);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), arrivals }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const FORM_BOUNDARY = 'form-boundary';
const TRANSCRIPTION_FORM =
  `--${FORM_BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nllama3.2\r\n` +
  `--${FORM_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF audio\r\n--${FORM_BOUNDARY}--\r\n`;

const CHUNKINGS: Chunking[] = [{ kind: 'groups' }, { kind: 'whole' }, { kind: 'every', size: 1 }, { kind: 'every', size: 7 }, { kind: 'every', size: 4096 }];

describe('transparent proxying', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  for (const chunking of CHUNKINGS) {
    const name = chunking.kind === 'every' ? `${chunking.size}-byte chunks` : chunking.kind;
    it(`forwards every fixture byte for byte (${name})`, async () => {
      for (const meta of fixtureManifest()) {
        // One-byte writes of the 20 KB bodies add seconds and nothing more than the streams test.
        if (chunking.kind === 'every' && chunking.size === 1 && meta.bytes > 5000) continue;
        stack.fake.next({ ...fixtureBehavior(meta.file), chunking } as ReturnType<typeof fixtureBehavior>, meta.path);
        // A transcription is a multipart form (its manifest entry describes it in words).
        const form = meta.path === '/v1/audio/transcriptions';
        const body = form ? TRANSCRIPTION_FORM : meta.request === null ? undefined : JSON.stringify(meta.request);
        const contentType = form ? `multipart/form-data; boundary=${FORM_BOUNDARY}` : 'application/json';
        const got = await exchange(stack.url, meta.method, meta.path, body, { 'content-type': contentType });
        const label = `${meta.file} (${name})`;
        assert.equal(got.status, meta.status, label);
        assert.equal(got.headers['content-type'], meta.content_type, label);
        assert.deepEqual(got.body, fixture(meta.file), label);
        if (meta.transfer === 'content-length') assert.equal(got.headers['content-length'], String(meta.bytes), label);
        else assert.equal(got.headers['transfer-encoding'], 'chunked', label);
      }
    });
  }

  it('answers HEAD / as Ollama does: headers and Content-Length, no body', async () => {
    const got = await exchange(stack.url, 'HEAD', '/');
    assert.equal(got.status, 200);
    assert.equal(got.headers['content-length'], '17');
    assert.equal(got.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(got.body.length, 0);
  });

  it('forwards unknown routes and methods to Ollama, with the query string', async () => {
    const got = await exchange(stack.url, 'GET', '/api/nothing?x=1&y=%20');
    assert.equal(got.status, 404);
    assert.equal(got.body.toString(), '404 page not found');
    assert.equal(stack.fake.requests[stack.fake.requests.length - 1].url, '/api/nothing?x=1&y=%20');
  });

  it('delivers a pass-through stream (/api/pull) line by line as Ollama writes it', async () => {
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('pull-stream.ndjson'), gapMs: 40 });
    const got = await exchange(stack.url, 'POST', '/api/pull', '{"model":"llama3.2"}');
    assert.deepEqual(got.body, fixture('pull-stream.ndjson'));
    const lines = fixture('pull-stream.ndjson').toString().trim().split('\n').length;
    assert.ok(got.arrivals.length >= lines - 2, `expected about ${lines} separate arrivals, got ${got.arrivals.length}`);
    // The first line reached the client long before the last was written.
    assert.ok(got.arrivals[got.arrivals.length - 1] - got.arrivals[0] > 40 * (lines - 3));
  });

  it('delivers an instrumented stream (/api/chat) line by line as Ollama writes it', async () => {
    stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('generate-stream.ndjson'), gapMs: 30 });
    const got = await exchange(stack.url, 'POST', '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    const lines = fixture('generate-stream.ndjson').toString().trim().split('\n').length;
    assert.ok(got.arrivals.length >= lines - 2, `expected about ${lines} separate arrivals, got ${got.arrivals.length}`);
    assert.ok(got.arrivals[got.arrivals.length - 1] - got.arrivals[0] > 30 * (lines - 3));
  });

  it('sends Ollama its own Host, so an Ollama on loopback does not answer 403', async () => {
    const got = await exchange(stack.url, 'GET', '/api/version', undefined, { host: 'gateway.example.com' });
    assert.equal(got.status, 200);
    assert.equal(stack.fake.last('/api/version')?.headers.host, `127.0.0.1:${stack.fake.port}`);
  });

  it('does not forward hop-by-hop headers, and forwards the others', async () => {
    await exchange(stack.url, 'POST', '/api/chat', '{"model":"llama3.2","stream":false}', {
      connection: 'keep-alive, x-hop',
      'x-hop': 'secret-to-this-hop',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'x-request-id': 'abc-123',
      authorization: 'Bearer app-key',
    });
    const seen = stack.fake.last('/api/chat')!.headers;
    assert.equal(seen['x-hop'], undefined);
    assert.equal(seen['keep-alive'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(seen['proxy-authorization'], undefined);
    assert.equal(seen['x-request-id'], 'abc-123');
    assert.equal(seen.authorization, 'Bearer app-key');
  });

  it('reuses upstream connections across requests', async () => {
    const before = stack.fake.connections;
    for (let i = 0; i < 20; i++) {
      await exchange(stack.url, 'GET', '/api/tags');
      await exchange(stack.url, 'POST', '/api/chat', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    }
    assert.ok(stack.fake.connections - before <= 1, `opened ${stack.fake.connections - before} connections for 40 sequential requests`);
  });

  it('streams a large blob upload to Ollama without holding it in memory', async () => {
    const size = 256 * 1024 * 1024;
    const piece = Buffer.alloc(1024 * 1024, 7);
    const hash = createHash('sha256');
    for (let i = 0; i < size / piece.length; i++) hash.update(piece);
    const digest = hash.digest('hex');
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= size) this.push(null);
        else {
          sent += piece.length;
          this.push(piece);
        }
      },
    });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 5);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${stack.url}/api/blobs/sha256:${digest}`, { method: 'POST', headers: { 'content-length': String(size) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      body.pipe(req);
    });
    clearInterval(sampler);
    assert.equal(status, 201);
    const got = stack.fake.last(`/api/blobs/sha256:${digest}`)!;
    assert.equal(got.bodyLength, size);
    assert.equal(got.bodySha256, digest);
    const grewMb = (rssPeak - rssBefore) / 1024 / 1024;
    assert.ok(grewMb < 96, `memory grew by ${grewMb.toFixed(0)} MB while uploading 256 MB`);
  });
});
