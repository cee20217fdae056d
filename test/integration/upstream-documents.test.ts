/**
 * The gateway's own GETs to Ollama (polls, /readyz, the listings of several backends) are bounded
 * as a whole: an Ollama that trickles its answer a byte at a time, or sends an endless document,
 * is cut within the timeout and at 16 MiB, and the gateway says why.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startGatewayFor, type GatewayOnly } from '../helpers/gateway';

/** An Ollama whose /api/version trickles forever (`trickle`) or streams megabytes of JSON white space (`huge`). */
function hostile(): Promise<http.Server & { sent: () => number }> {
  let sent = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url === '/trickle/api/version') {
      res.write('{"version":');
      const t = setInterval(() => res.write(' '), 100);
      timers.add(t);
      res.on('close', () => clearInterval(t));
      return;
    }
    // Valid JSON once it ends: a version after 64 MiB of white space.
    const block = Buffer.alloc(1 << 20, 0x20);
    let left = 64;
    res.write('{"version":');
    const pump = () => {
      while (left > 0) {
        left--;
        sent += block.length;
        if (!res.write(block)) return void res.once('drain', pump);
      }
      res.end('"0.1"}');
    };
    res.on('close', () => (left = 0));
    pump();
  }) as http.Server & { sent: () => number };
  server.sent = () => sent;
  server.on('close', () => timers.forEach(clearInterval));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe("the gateway's own GETs to Ollama", () => {
  let up: http.Server & { sent: () => number };
  let origin: string;
  before(async () => {
    up = await hostile();
    origin = `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
  });
  after(() => {
    up.closeAllConnections();
    up.close();
  });

  it('gives up on an answer that trickles, within the timeout, though bytes keep coming', { timeout: 15_000 }, async () => {
    let g: GatewayOnly | undefined;
    try {
      g = await startGatewayFor(`${origin}/trickle`);
      const t0 = Date.now();
      const res = await fetch(`${g.url}/readyz`);
      const took = Date.now() - t0;
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { reason: string }).reason, /did not answer \/api\/version within 2000 ms/);
      assert.ok(took < 4000, `/readyz answered after ${took} ms`);
    } finally {
      await g?.close();
    }
  });

  it('stops reading an answer past 16 MiB, and holds none of the rest', { timeout: 15_000 }, async () => {
    let g: GatewayOnly | undefined;
    try {
      g = await startGatewayFor(`${origin}/huge`);
      const res = await fetch(`${g.url}/readyz`);
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { reason: string }).reason, /more than 16 MiB/);
      // The connection was cut: the server could not send much past the cap (socket buffers aside).
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(up.sent() < 40 * 2 ** 20, `the upstream sent ${up.sent()} bytes`);
    } finally {
      await g?.close();
    }
  });
});
