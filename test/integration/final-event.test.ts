/**
 * A call is complete once its final event has passed to the client (`"done":true`, `data: [DONE]`,
 * `response.completed`, `message_stop`), whatever the client does next. Go writes the chunked
 * terminator only after the handler returns, so it may come a moment after the final event; real
 * clients (openai-node, Codex, the Agents SDK) close without waiting for it. Such a call is a
 * success, with its TTFT and time per token, and the request to Ollama is left to finish.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { fixture } from '../helpers/fixtures';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { RawConnection, rawRequest } from '../helpers/raw-client';
import { eventually } from '../helpers/wait';

const MODEL = 'llama3.2:latest';

/** A fixture served with its chunked terminator `endGapMs` after its final event. */
function lateEnd(file: string, endGapMs: number): Behavior {
  return { ...(fixtureBehavior(file) as Extract<Behavior, { kind: 'body' }>), endGapMs };
}

interface Counts {
  ok: number;
  cancelled: number;
  ttft: number;
}

async function counts(url: string, endpoint: string): Promise<Counts> {
  const m = await metricsText(url);
  return {
    ok: sample(m, 'ollama_requests_total', { model: MODEL, endpoint, status: '200' }) ?? 0,
    cancelled: sample(m, 'ollama_request_errors_total', { model: MODEL, endpoint, reason: 'client_cancelled' }) ?? 0,
    ttft: sample(m, 'ollama_time_to_first_token_seconds_count', { model: MODEL }) ?? 0,
  };
}

interface ConsoleCall {
  at: number;
  endpoint: string;
  status: number;
  reason?: string;
}

/** The console's newest call on `endpoint` made at or after `since` (its snapshot lags up to half a second). */
async function newestCall(url: string, endpoint: string, since: number): Promise<ConsoleCall> {
  let call: ConsoleCall | undefined;
  await eventually(async () => {
    const { calls } = (await (await fetch(`${url}/console/api/v1/calls?limit=1`)).json()) as { calls: ConsoleCall[] };
    call = calls[0];
    return call !== undefined && call.endpoint === endpoint && call.at >= since;
  }, `the console to list the call on ${endpoint}`);
  return call!;
}

async function genAiTimePerToken(url: string): Promise<number> {
  const m = await metricsText(url);
  let n = 0;
  for (const line of m.split('\n')) if (line.startsWith('gen_ai_server_time_per_output_token_seconds_count{')) n += Number(line.split(' ').pop());
  return n;
}

/** Sends `body` to `path` on a raw connection, and closes it as soon as `final` has arrived. */
async function closeAfter(port: number, path: string, body: unknown, final: string): Promise<void> {
  const conn = await RawConnection.open(port);
  await conn.send(rawRequest('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }));
  await eventually(
    () => conn.received.includes(final),
    () => `the final event ${final}; received ${conn.describe()}`,
  );
  // The terminator has not come yet (it is scheduled well after the final event).
  assert.ok(!conn.received.includes('\r\n0\r\n\r\n'), 'the client closes before the end of the body');
  conn.destroy();
}

describe('a call whose final event passed is complete, even when the client leaves before the end of the body', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack();
  });
  after(() => s.close());
  beforeEach(async () => {
    await s.fake.idle();
  });

  async function expectComplete(endpoint: string, before: Counts, tpotBefore: number, abandonedBefore: number, since: number): Promise<void> {
    await eventually(async () => (await counts(s.url, endpoint)).ok === before.ok + 1, `a 200 on ${endpoint}`);
    const after = await counts(s.url, endpoint);
    assert.equal(after.cancelled, before.cancelled, 'not counted as cancelled');
    assert.equal(after.ttft, before.ttft + 1, 'its time to first token is recorded');
    assert.equal(await genAiTimePerToken(s.url), tpotBefore + 1, 'its GenAI time per output token is recorded');
    // Ollama is left to write its terminator: the response to the gateway is not abandoned.
    await s.fake.idle();
    assert.equal(s.fake.abandoned, abandonedBefore, 'the request to Ollama is not aborted');
    const call = await newestCall(s.url, endpoint, since);
    assert.equal(call.status, 200);
    assert.equal(call.reason, undefined, 'the console shows a success');
  }

  it('the OpenAI SDK stopping at the end of a chat stream whose terminator comes 1 to 100 ms after [DONE]', async () => {
    const connections = s.fake.connections;
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'ollama', maxRetries: 0 });
    // One write per event up to the finish event; that event, the usage event and [DONE] come in
    // one write, as Ollama's writer sends them back to back. So [DONE] has passed the gateway by
    // the time the application sees the finish reason and stops.
    const sse = fixture('openai-chat-stream.sse');
    const finish = sse.lastIndexOf('data: ', sse.indexOf('"finish_reason":"stop"'));
    const offsets: number[] = [];
    for (let at = sse.indexOf('\n\n') + 2; at > 1 && at <= finish; at = sse.indexOf('\n\n', at) + 2) offsets.push(at);
    // 1–2 ms is Go's usual gap; with the longer ones the client is sure to have closed first.
    for (const endGapMs of [1, 2, 20, 100]) {
      const before = await counts(s.url, '/v1/chat/completions');
      const tpot = await genAiTimePerToken(s.url);
      const abandoned = s.fake.abandoned;
      const since = Date.now();
      s.fake.next({ ...lateEnd('openai-chat-stream.sse', endGapMs), chunking: { kind: 'at', offsets } } as Behavior, '/v1/chat/completions');
      const stream = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'Say this is a test' }], stream: true });
      let text = '';
      // As an application does: it stops reading once the answer is finished.
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? '';
        if (c.choices[0]?.finish_reason) break;
      }
      assert.equal(text, 'This is a test.');
      await expectComplete('/v1/chat/completions', before, tpot, abandoned, since);
    }
    // The connection to Ollama stayed whole and was used again.
    assert.equal(s.fake.connections, connections + 1);
  });

  it('a raw client closing right after data: [DONE]', async () => {
    const before = await counts(s.url, '/v1/chat/completions');
    const tpot = await genAiTimePerToken(s.url);
    const abandoned = s.fake.abandoned;
    const startedAt = Date.now();
    s.fake.next(lateEnd('openai-chat-stream.sse', 200), '/v1/chat/completions');
    const body = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true };
    await closeAfter(s.gw.port, '/v1/chat/completions', body, 'data: [DONE]');
    await expectComplete('/v1/chat/completions', before, tpot, abandoned, startedAt);
  });

  it('a raw client closing right after response.completed (Codex, the Agents SDK)', async () => {
    const before = await counts(s.url, '/v1/responses');
    const tpot = await genAiTimePerToken(s.url);
    const abandoned = s.fake.abandoned;
    const startedAt = Date.now();
    s.fake.next(lateEnd('openai-responses-stream.sse', 200), '/v1/responses');
    await closeAfter(s.gw.port, '/v1/responses', { model: 'llama3.2', input: 'hi', stream: true }, 'event: response.completed\ndata: ');
    await expectComplete('/v1/responses', before, tpot, abandoned, startedAt);
  });

  it('a raw client closing right after message_stop (Anthropic)', async () => {
    const before = await counts(s.url, '/v1/messages');
    const tpot = await genAiTimePerToken(s.url);
    const abandoned = s.fake.abandoned;
    const startedAt = Date.now();
    s.fake.next(lateEnd('anthropic-messages-stream.sse', 200), '/v1/messages');
    const body = { model: 'llama3.2', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], stream: true };
    await closeAfter(s.gw.port, '/v1/messages', body, 'event: message_stop\ndata: {"type":"message_stop"}\n\n');
    await expectComplete('/v1/messages', before, tpot, abandoned, startedAt);
  });

  it('a raw client closing right after "done":true (native)', async () => {
    const before = await counts(s.url, '/api/chat');
    const tpot = await genAiTimePerToken(s.url);
    const abandoned = s.fake.abandoned;
    const startedAt = Date.now();
    s.fake.next(lateEnd('chat-stream.ndjson', 200), '/api/chat');
    await closeAfter(s.gw.port, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }, '"done":true');
    await expectComplete('/api/chat', before, tpot, abandoned, startedAt);
  });

  it('a client that leaves before the final event is cancelled, and the request to Ollama is aborted', async () => {
    const before = await counts(s.url, '/api/chat');
    const abandoned = s.fake.abandoned;
    const startedAt = Date.now();
    const body = fixture('chat-stream.ndjson');
    const done = body.indexOf('"done":true');
    const lastLine = body.lastIndexOf('\n', done) + 1;
    s.fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body, bytes: lastLine }, '/api/chat');
    const conn = await RawConnection.open(s.gw.port);
    await conn.send(rawRequest('POST', '/api/chat', { body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }) }));
    await eventually(() => conn.received.includes('"done":false'), 'the first lines');
    conn.destroy();
    await eventually(async () => (await counts(s.url, '/api/chat')).cancelled === before.cancelled + 1, 'a client_cancelled');
    assert.equal((await newestCall(s.url, '/api/chat', startedAt)).reason, 'client_cancelled');
    await eventually(() => s.fake.abandoned === abandoned + 1, 'the request to Ollama aborted');
  });
});
