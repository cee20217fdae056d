/**
 * Slipping past a limit by timing: a client that leaves a stream before its final event, which
 * alone carries Ollama's token counts, is still charged the tokens it was sent (otherwise hanging
 * up just before `done` made every call free against a token budget); a burst of concurrent calls
 * at a request limit gets exactly the limit through, in one process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startStack, type TestStack } from '../helpers/gateway';
import { fixture } from '../helpers/fixtures';
import { RawConnection, rawRequest } from '../helpers/raw-client';
import { eventually } from '../helpers/wait';

const STREAM = fixture('chat-stream.ndjson');
/** Every line but the final one (`done: true`). */
const BEFORE_FINAL = STREAM.lastIndexOf('\n', STREAM.length - 2) + 1;
const CONTENT_LINES = STREAM.subarray(0, BEFORE_FINAL).toString().split('\n').filter(Boolean).length;

describe('a stream left before its final event', () => {
  let dir: string;
  let stack: TestStack;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'budget-evasion-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(
      file,
      `tenants:\n  - name: cutter\n    keys: [sk-cutter]\n    limits: { tokens_per_minute: ${CONTENT_LINES} }\n` +
        `  - name: burst\n    keys: [sk-burst]\n    limits: { requests_per_minute: 5 }\n`,
    );
    stack = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'data'), LEDGER_URL: '' });
  });
  after(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('charges the tokens it streamed against the token budget', async () => {
    stack.fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: STREAM, bytes: BEFORE_FINAL }, '/api/chat');
    const conn = await RawConnection.open(Number(new URL(stack.url).port));
    await conn.send(
      rawRequest('POST', '/api/chat', {
        headers: { authorization: 'Bearer sk-cutter', 'content-type': 'application/json' },
        body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}',
      }),
    );
    await eventually(() => conn.received.toString().split('"done":false').length - 1 === CONTENT_LINES, 'every content line arrived');
    conn.destroy();
    await eventually(
      () => stack.logs.some((l) => l.tenant === 'cutter' && l.error === 'client_cancelled'),
      () => 'the cut call was logged',
    );
    const next = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-cutter' },
      body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
    });
    assert.equal(next.status, 429, 'the cut call used the minute’s tokens');
    assert.match(((await next.json()) as { error: string }).error, new RegExp(`tokens_per_minute: limit ${CONTENT_LINES} tokens, used ${CONTENT_LINES}`));
  });

  it('lets exactly the limit through of a burst of concurrent calls', async () => {
    const before = stack.fake.requests.filter((r) => r.url === '/api/chat').length;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${stack.url}/api/chat`, {
          method: 'POST',
          headers: { authorization: 'Bearer sk-burst' },
          body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
        }).then(async (r) => (await r.arrayBuffer(), r.status)),
      ),
    );
    assert.equal(answers.filter((s) => s === 200).length, 5, answers.join(' '));
    assert.equal(answers.filter((s) => s === 429).length, 15, answers.join(' '));
    assert.equal(stack.fake.requests.filter((r) => r.url === '/api/chat').length - before, 5, 'only the admitted calls were forwarded');
  });
});
