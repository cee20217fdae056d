/**
 * Once a client leaves at a stream's final event, the gateway reads what is left of Ollama's body
 * so the connection survives; an upstream that goes on sending after its final line is cut once
 * `MAX_DRAIN_BYTES` have been dropped, and one that trickles is cut after `MAX_DRAIN_MS`, rather
 * than read for ever.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MAX_DRAIN_BYTES, MAX_DRAIN_MS } from '../../src/proxy/tap';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startGatewayFor, type GatewayOnly } from '../helpers/gateway';
import { RawConnection, rawRequest } from '../helpers/raw-client';
import { eventually } from '../helpers/wait';

describe('an upstream that keeps sending after its final line', () => {
  let upstream: http.Server;
  let gw: GatewayOnly;
  let sentAfterFinal = 0;
  let cut = false;
  before(async () => {
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(fixture('chat-stream.ndjson'));
        const junk = Buffer.alloc(4096, 0x20);
        const timer = setInterval(() => {
          res.write(junk);
          sentAfterFinal += junk.length;
        }, 2);
        res.on('close', () => {
          clearInterval(timer);
          cut = !res.writableFinished;
        });
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    gw = await startGatewayFor(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  });
  after(async () => {
    await gw.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  it('is cut after the drain bound, and the call is still complete', async () => {
    const conn = await RawConnection.open(gw.gw.port);
    await conn.send(rawRequest('POST', '/api/chat', { body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }) }));
    await eventually(() => conn.received.includes('"done":true'), 'the final line');
    conn.destroy();
    await eventually(() => cut, 'the connection to the upstream cut');
    // Dropped at most the bound (and what was in flight when it was passed).
    assert.ok(sentAfterFinal < MAX_DRAIN_BYTES * 16, `${sentAfterFinal} bytes sent after the final line`);
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'client_cancelled' }), 0);
  });
});

describe('an upstream that trickles after its final line', () => {
  let upstream: http.Server;
  let gw: GatewayOnly;
  let cut = false;
  before(async () => {
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(fixture('chat-stream.ndjson'));
        // A byte every 200 ms: never silent for the idle timeout, far from the byte bound.
        const timer = setInterval(() => res.write(' '), 200);
        res.on('close', () => {
          clearInterval(timer);
          cut = !res.writableFinished;
        });
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    gw = await startGatewayFor(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  });
  after(async () => {
    await gw.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  it('is cut after the drain deadline, and the call is still complete', async () => {
    const conn = await RawConnection.open(gw.gw.port);
    await conn.send(rawRequest('POST', '/api/chat', { body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }) }));
    await eventually(() => conn.received.includes('"done":true'), 'the final line');
    conn.destroy();
    // Well past the deadline, far short of the 64 KiB a byte every 200 ms would take (about 3.6 h).
    await eventually(() => cut, 'the connection to the upstream cut', MAX_DRAIN_MS * 5);
    const m = await metricsText(gw.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'client_cancelled' }), 0);
  });
});
