/**
 * An answer whose numbers are out of Ollama's range (`"eval_count":1e308`, negative durations) is
 * recorded nowhere: the token counters and duration histograms stay finite and exact, and the call
 * counts as a broken answer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const M = { model: 'llama3.2:latest' };

describe('numbers from Ollama out of range', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack();
  });
  after(() => s.close());

  it('leave /metrics finite and the counts exact', async () => {
    const hostile = fixture('chat-stream.ndjson')
      .toString('utf8')
      .replace('"eval_count":31', '"eval_count":1e308')
      .replace('"prompt_eval_count":37', '"prompt_eval_count":37.5')
      .replace('"eval_duration":428816000', '"eval_duration":-428816000');
    s.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: Buffer.from(hostile) }, '/api/chat');
    const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    const first = await fetch(`${s.url}/api/chat`, { method: 'POST', body });
    assert.equal(first.status, 200);
    assert.equal(await first.text(), hostile, 'the client still gets the answer as Ollama sent it');
    // A well-formed call after it.
    await (await fetch(`${s.url}/api/chat`, { method: 'POST', body })).text();

    const m = await metricsText(s.url);
    assert.ok(!/ [+-]?Inf$|NaN$/m.test(m), 'no infinite or NaN sample');
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), 31);
    assert.equal(sample(m, 'ollama_tokens_processed_total', M), 37);
    assert.equal(sample(m, 'ollama_eval_duration_seconds_count', M), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: '/api/chat', reason: 'stream_error' }), 1);
  });
});
