/**
 * The small pieces of a newcomer's first contact: the likely fix named when Ollama cannot be
 * reached at start, OpenTelemetry diagnostics as structured fields (never JSON inside a string),
 * and the refusal of an unsupported Node.js.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sdkProblem } from '../../otel/env';
import { unsupportedNode } from '../../src/node-support';
import { reachHint } from '../../src/reach-hint';

describe('the likely fix when Ollama cannot be reached', () => {
  it('names --add-host when host.docker.internal does not resolve (Docker on Linux)', () => {
    assert.match(reachHint('host.docker.internal', undefined, 'ENOTFOUND', true)!, /--add-host=host\.docker\.internal:host-gateway/);
  });

  it('names OLLAMA_HOST=0.0.0.0 for ollama serve when another host refuses', () => {
    assert.match(reachHint('host.docker.internal', undefined, 'ECONNREFUSED', true)!, /OLLAMA_HOST=0\.0\.0\.0 ollama serve/);
    assert.match(reachHint('gpu-a', undefined, 'ECONNREFUSED', false)!, /OLLAMA_HOST=0\.0\.0\.0 ollama serve/);
  });

  it("says that a container's 127.0.0.1 is the container, and outside one asks whether Ollama runs", () => {
    assert.match(reachHint('127.0.0.1', undefined, 'ECONNREFUSED', true)!, /container itself.*host\.docker\.internal/);
    assert.match(reachHint('localhost', undefined, 'ECONNREFUSED', false)!, /ollama serve/);
  });

  it('points at the host name when it does not resolve, and at the socket for a Unix socket', () => {
    assert.match(reachHint('olama', undefined, 'ENOTFOUND', false)!, /host name in OLLAMA_HOST \(olama/);
    assert.match(reachHint('localhost', '/run/ollama.sock', 'ENOENT', false)!, /\/run\/ollama\.sock/);
    assert.equal(reachHint('gpu-a', undefined, undefined, false), undefined);
  });
});

describe('OpenTelemetry diagnostics as log fields', () => {
  it("turns the SDK error handler's JSON-in-a-string into fields of their own", () => {
    // What @opentelemetry/core's error handler passes to diag.error for an export failure.
    const flattened = JSON.stringify({
      stack: 'Error: connect ECONNREFUSED\n    at …',
      message: 'connect ECONNREFUSED 127.0.0.1:4318',
      code: 'ECONNREFUSED',
      name: 'Error',
    });
    const p = sdkProblem([flattened]);
    assert.deepEqual(p, {
      detail: 'connect ECONNREFUSED 127.0.0.1:4318',
      error: { name: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:4318', code: 'ECONNREFUSED' },
    });
    assert.ok(!JSON.stringify(p).includes('\\"'), 'no JSON inside a string');
  });

  it('keeps words as the detail and an Error as fields', () => {
    const err = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    assert.deepEqual(sdkProblem(['metrics export failed', err]), {
      detail: 'metrics export failed',
      error: { name: 'Error', message: 'socket hang up', code: 'ECONNRESET' },
    });
    assert.deepEqual(sdkProblem(['Accessing resource attributes before async attributes settled']), {
      detail: 'Accessing resource attributes before async attributes settled',
    });
  });

  it('bounds what it carries', () => {
    const p = sdkProblem([JSON.stringify({ message: 'x'.repeat(10_000), other: 'y'.repeat(10_000) })]);
    assert.equal(p.error?.message?.length, 1024);
    assert.ok(JSON.stringify(p).length < 2200);
  });
});

describe('the supported Node.js lines', () => {
  it('refuses a line older than the oldest supported, with one line naming the supported ones', () => {
    assert.equal(
      unsupportedNode('20.20.2'),
      'ollama-otel-gateway: Node.js 20.20.2 is not supported: use Node.js 22 or newer (the LTS lines 22, 24, 26 are supported)',
    );
    assert.match(unsupportedNode('18.0.0')!, /not supported/);
    for (const v of ['22.0.0', '24.22.3', '26.1.0']) assert.equal(unsupportedNode(v), undefined, v);
  });
});
