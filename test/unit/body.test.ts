/**
 * Request bodies are held within three bounds: their own size, the memory all bodies share, and the
 * silence the gateway waits through. Every byte reserved is given back, whatever the ending.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { BodyBudget, BodyError, readBody } from '../../src/request/body';

/** A stand-in for a request: a readable stream with headers and `complete`. */
function fakeRequest(headers: Record<string, string> = {}): PassThrough & { headers: Record<string, string>; complete: boolean } {
  const s = new PassThrough() as PassThrough & { headers: Record<string, string>; complete: boolean };
  s.headers = headers;
  s.complete = false;
  s.on('end', () => (s.complete = true));
  return s;
}

const asRequest = (s: PassThrough): IncomingMessage => s as unknown as IncomingMessage;

describe('reading a request body', () => {
  it('holds the body against the budget until released', async () => {
    const budget = new BodyBudget(100);
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 50, budget, idleTimeoutMs: 0 });
    req.write(Buffer.alloc(20));
    req.end(Buffer.alloc(10));
    const held = await reading;
    assert.equal(held.bytes.length, 30);
    assert.equal(budget.held, 30);
    held.release();
    held.release();
    assert.equal(budget.held, 0);
  });

  it('refuses a body that would pass the shared budget, and gives back what it had reserved', async () => {
    const budget = new BodyBudget(100);
    assert.ok(budget.reserve(80));
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 50, budget, idleTimeoutMs: 0 });
    req.write(Buffer.alloc(15));
    req.write(Buffer.alloc(15));
    await assert.rejects(reading, (err: unknown) => err instanceof BodyError && err.failure === 'budget');
    assert.equal(budget.held, 80);
  });

  it('refuses a declared or received length over the limit', async () => {
    const budget = new BodyBudget(1000);
    await assert.rejects(
      readBody(asRequest(fakeRequest({ 'content-length': '51' })), { maxBytes: 50, budget, idleTimeoutMs: 0 }),
      (err: unknown) => err instanceof BodyError && err.failure === 'too_large',
    );
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 50, budget, idleTimeoutMs: 0 });
    req.write(Buffer.alloc(40));
    req.write(Buffer.alloc(40));
    await assert.rejects(reading, (err: unknown) => err instanceof BodyError && err.failure === 'too_large');
    assert.equal(budget.held, 0);
  });

  it('times out a body that stops arriving, and gives its memory back', async () => {
    const budget = new BodyBudget(1000);
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 500, budget, idleTimeoutMs: 50 });
    req.write(Buffer.alloc(100));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(budget.held, 100);
    await assert.rejects(reading, (err: unknown) => err instanceof BodyError && err.failure === 'timeout');
    assert.equal(budget.held, 0);
  });

  it('keeps waiting while bytes keep arriving', async () => {
    const budget = new BodyBudget(1000);
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 500, budget, idleTimeoutMs: 60 });
    for (let i = 0; i < 5; i++) {
      req.write(Buffer.alloc(10));
      await new Promise((r) => setTimeout(r, 30));
    }
    req.end();
    assert.equal((await reading).bytes.length, 50);
  });

  it('gives everything back when the client goes away mid-body', async () => {
    const budget = new BodyBudget(1000);
    const req = fakeRequest();
    const reading = readBody(asRequest(req), { maxBytes: 500, budget, idleTimeoutMs: 0 });
    req.write(Buffer.alloc(100));
    await new Promise((r) => setTimeout(r, 5));
    req.destroy();
    await assert.rejects(reading, (err: unknown) => err instanceof BodyError && err.failure === 'aborted');
    assert.equal(budget.held, 0);
  });
});
