/**
 * A compressed OpenAI stream relayed decoded (the gateway asked for usage on the client's behalf,
 * so it strips that event and the client gets the decoded stream): clients that do not read hold
 * the gateway's memory only as the plain relay does, and a compression bomb buys bounded work.
 * The gateway runs as its own process (the benchmark's probe), whose memory is read over IPC.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { HostileUpstream, reply } from '../helpers/hostile-upstream';
import { freePort, startNode, waitForPort } from '../helpers/procs';
import { eventually, sleep } from '../helpers/wait';

interface Stats {
  rssMb: number;
  heapUsedMb: number;
}

/** `mb` MiB of OpenAI stream events. */
function openAiStream(mb: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < mb * 2 ** 20) {
    const content = ` w${(parts.length * 7919) % 1_000_003}`;
    const e = `data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1767225600,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"${content}"},"finish_reason":null}]}\n\n`;
    parts.push(e);
    n += e.length;
  }
  parts.push('data: [DONE]\n\n');
  return Buffer.from(parts.join(''));
}

const REQUEST_BODY = JSON.stringify({ model: 'llama3.2', stream: true, messages: [{ role: 'user', content: 'hi' }] });
const request = (port: number) =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(REQUEST_BODY)}\r\n\r\n${REQUEST_BODY}`;

describe('a compressed stream relayed decoded', () => {
  let up: HostileUpstream;
  let child: ReturnType<typeof startNode>;
  let port: number;
  let plain: Buffer;
  let gzipped: Buffer;
  const sockets: net.Socket[] = [];

  const stats = (): Promise<Stats> =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as Stats));
      child.send({ type: 'stats', gc: true });
    });

  before(async () => {
    plain = openAiStream(16);
    // Compressed as a proxy compresses a stream, a little at a time: one gzip member per 16 KiB
    // (Node reads the members as one stream), about 29:1.
    const members: Buffer[] = [];
    for (let at = 0; at < plain.length; at += 16 * 1024) members.push(zlib.gzipSync(plain.subarray(at, at + 16 * 1024), { level: 6 }));
    gzipped = Buffer.concat(members);
    up = await new HostileUpstream().start();
    up.on('/v1/chat/completions', () => reply(200, 'text/event-stream', gzipped, { 'Content-Encoding': 'gzip' }));
    port = await freePort();
    child = startNode(
      path.resolve(__dirname, '..', '..', 'bench', 'gateway-probe.js'),
      [],
      { OLLAMA_HOST: up.origin, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'ERROR', OLLAMA_POLL_INTERVAL_SECONDS: '0', NODE_OPTIONS: '--expose-gc' },
      true,
    );
    await waitForPort(port);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    child.kill('SIGTERM');
    await up.close();
  });

  it('is relayed whole to a client that reads', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: REQUEST_BODY });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-encoding'), null);
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, plain.length);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(plain).digest('hex'));
  });

  it('holds little memory for clients that do not read, and cuts a compression bomb at its bound', async (t) => {
    // 64 MiB of 1 KiB events, gzip'd ~480:1 to ~140 KB: a couple of reads.
    const bomb = zlib.gzipSync(Buffer.from(`data: ${'a'.repeat(1018)}\n\n`.repeat(64 * 1024)), { level: 9 });
    const CLIENTS = 3;
    const before = await stats();
    const seen = up.requests.length;
    up.on('/v1/chat/completions', () => reply(200, 'text/event-stream', bomb, { 'Content-Encoding': 'gzip' }));
    const mine: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.pause(); // never reads
      s.write(request(port));
      sockets.push(s);
      mine.push(s);
    }
    await eventually(() => up.requests.length === seen + CLIENTS, 'every call reached the upstream', 10_000);
    // Until the upstream has written all it can (what the gateway takes in, it has taken).
    const calls = up.requests.slice(seen);
    let last = -1;
    for (;;) {
      const written = calls.reduce((n, r) => n + r.bytesWritten, 0);
      if (written === last) break;
      last = written;
      await sleep(500);
    }
    await sleep(500);
    const held = await stats();
    const grewMb = held.rssMb - before.rssMb;
    t.diagnostic(`RSS ${before.rssMb.toFixed(1)} → ${held.rssMb.toFixed(1)} MB with ${CLIENTS} clients not reading a bomb`);
    assert.ok(grewMb < 40, `the gateway grew by ${grewMb.toFixed(1)} MB for ${CLIENTS} clients that do not read (heap ${held.heapUsedMb.toFixed(1)} MB)`);
    // Past the bound the decoded stream cannot go on: each client's connection is cut, short of
    // the 64 MiB the bomb holds.
    const received = mine.map(() => 0);
    mine.forEach((s, i) => s.on('data', (c: Buffer) => (received[i] += c.length)));
    for (const s of mine) s.resume();
    await eventually(
      () => mine.every((s) => s.closed),
      () => `every bomb's client cut (got ${received.join(', ')} bytes)`,
      15_000,
    );
    for (const n of received) assert.ok(n < 16 * 2 ** 20, `a client got ${n} bytes of the bomb`);
  });
});
