/**
 * The gateway driven by the OpenAI SDK's Responses API (`POST /v1/responses`, as Codex uses it)
 * against the fake Ollama's recorded streams (fixtures README §8.3): what the client gets, and the
 * exact metrics of each call. Every test runs on a fresh stack, so every value is absolute.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { VERSION as SDK_VERSION } from 'openai/version';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startGatewayFor, startStack, type TestStack } from '../helpers/gateway';

const ENDPOINT = '/v1/responses';
const TEXT =
  "The sky appears blue because molecules in Earth's atmosphere scatter shorter blue wavelengths of sunlight much more strongly than longer red ones — a process called Rayleigh scattering.";
const REASONING = "Okay, let's compute 17 times 23. Breaking it down: 17 times 20 is 340, and 17 times 3 is 51. Adding them gives 340 + 51 = 391.\n";
const ANSWER = '17 × 23 = **391**';
const SKY = { model: 'llama3.2', input: 'Why is the sky blue? Answer in one sentence.' };
const MATH = { model: 'qwen3:8b', input: 'What is 17 * 23?', reasoning: { effort: 'medium' as const, summary: 'auto' as const } };
/** Gap between the fake's writes: enough that every event reaches the gateway as its own chunk. */
const GAP_MS = 10;

/** A fixture as Ollama flushes it, one event per write, `GAP_MS` apart. */
function spaced(file: string): Behavior {
  const b = fixtureBehavior(file);
  assert.ok(b.kind === 'body');
  return { ...b, gapMs: GAP_MS };
}

/**
 * What passed through the SDK's fetch: each request body as sent and each response body as
 * received (undefined when the body broke off).
 */
interface Wire {
  sent: Buffer[];
  received: Promise<Buffer | undefined>[];
}

function recordingClient(url: string): { client: OpenAI; wire: Wire } {
  const wire: Wire = { sent: [], received: [] };
  const recording = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = init?.body;
    wire.sent.push(typeof body === 'string' ? Buffer.from(body) : Buffer.alloc(0));
    const res = await fetch(input, init);
    if (!res.body) {
      wire.received.push(Promise.resolve(Buffer.alloc(0)));
      return res;
    }
    const [mine, theirs] = res.body.tee();
    wire.received.push(
      new Response(theirs).arrayBuffer().then(
        (b) => Buffer.from(b),
        () => undefined,
      ),
    );
    return new Response(mine, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'ollama', maxRetries: 0, fetch: recording }), wire };
}

function genAi(stack: TestStack, model: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    gen_ai_operation_name: 'chat',
    gen_ai_provider_name: 'ollama',
    gen_ai_request_model: model,
    server_address: '127.0.0.1',
    server_port: String(stack.fake.port),
    ...extra,
  };
}

interface Expected {
  model: string;
  status: number;
  reason?: string;
  input?: number;
  output?: number;
  /** Streams: content events (deltas) the gateway saw, each in its own chunk; undefined when none. */
  deltas?: number;
}

/** Checks the metrics of the one call a fresh stack served. */
async function assertMetrics(stack: TestStack, e: Expected): Promise<void> {
  const m = await metricsText(stack.url);
  const M = { model: e.model };
  // A name Ollama never answered with a success status has its counts, and no histogram.
  const histogram = e.status >= 200 && e.status < 400 ? 1 : undefined;
  assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: ENDPOINT, status: String(e.status) }), 1, 'requests_total');
  assert.equal(sample(m, 'ollama_response_seconds_count', { ...M, endpoint: ENDPOINT }), histogram);
  assert.equal(sample(m, 'ollama_requests_in_flight', { ...M, endpoint: ENDPOINT }), 0);
  for (const reason of ['stream_error', 'upstream_4xx', 'upstream_5xx', 'upstream_unreachable', 'upstream_timeout', 'client_cancelled']) {
    assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: ENDPOINT, reason }) ?? 0, reason === e.reason ? 1 : 0, `errors{reason=${reason}}`);
  }
  assert.equal(sample(m, 'ollama_tokens_processed_total', M), e.input, 'tokens processed');
  assert.equal(sample(m, 'ollama_tokens_generated_total', M), e.output, 'tokens generated');
  assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), e.deltas === undefined ? undefined : 1, 'ttft count');
  assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), e.deltas === undefined || e.deltas < 2 ? undefined : e.deltas - 1, 'inter-token count');
  // Ollama reports no durations on /v1, so nothing of the native API's timings.
  assert.equal(sample(m, 'ollama_eval_duration_seconds_count', M), undefined);
  assert.equal(sample(m, 'ollama_queue_seconds_count', M), undefined);

  const g = genAi(stack, e.model);
  assert.equal(sample(m, 'gen_ai_client_token_usage_sum', { ...g, gen_ai_token_type: 'input' }), e.input, 'gen_ai input tokens');
  assert.equal(sample(m, 'gen_ai_client_token_usage_count', { ...g, gen_ai_token_type: 'input' }), e.input === undefined ? undefined : 1);
  assert.equal(sample(m, 'gen_ai_client_token_usage_sum', { ...g, gen_ai_token_type: 'output' }), e.output, 'gen_ai output tokens');
  assert.equal(sample(m, 'gen_ai_client_token_usage_count', { ...g, gen_ai_token_type: 'output' }), e.output === undefined ? undefined : 1);
  const failed = e.reason === undefined ? g : genAi(stack, e.model, { error_type: errorType(e) });
  assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_count', failed), histogram, 'gen_ai operation duration');
  // The server-side latency metrics are for successful streams only.
  const ttftOk = e.reason === undefined && e.deltas !== undefined ? 1 : undefined;
  assert.equal(sample(m, 'gen_ai_server_time_to_first_token_seconds_count', g), ttftOk);
}

/** `error.type` as the GenAI metrics record it: the status for Ollama's 4xx/5xx, else the reason. */
function errorType(e: Expected): string {
  return e.reason === 'upstream_4xx' || e.reason === 'upstream_5xx' ? String(e.status) : e.reason!;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('OpenAI Responses API (SDK) through the gateway', () => {
  let stack: TestStack;
  let client: OpenAI;
  let wire: Wire;
  beforeEach(async () => {
    stack = await startStack();
    ({ client, wire } = recordingClient(stack.url));
  });
  afterEach(() => stack.close());

  /** The request body Ollama got is exactly the one the SDK sent (nothing injected). */
  function assertBodyUntouched(): void {
    const got = stack.fake.last(ENDPOINT);
    assert.ok(got, 'Ollama received the request');
    assert.equal(wire.sent.length, 1);
    assert.deepEqual(got.body, wire.sent[0]);
    const json = JSON.parse(got.body.toString('utf8')) as Record<string, unknown>;
    assert.equal(Object.prototype.hasOwnProperty.call(json, 'stream_options'), false, 'no stream_options on /v1/responses');
  }

  it('answers a non-streamed response and counts its usage', async () => {
    const res = await client.responses.create(SKY);
    assert.equal(res.id, 'resp_260228');
    assert.equal(res.status, 'completed');
    assert.equal(res.output_text, TEXT);
    assert.equal(res.usage?.input_tokens, 37);
    assert.equal(res.usage?.output_tokens, 31);
    assert.equal(res.usage?.total_tokens, 68);
    assertBodyUntouched();
    assert.deepEqual(await wire.received[0], fixture('openai-responses-nostream.json'));
    // A single JSON answer: no time to first token, no gaps.
    await assertMetrics(stack, { model: 'llama3.2:latest', status: 200, input: 37, output: 31 });
    assert.equal(sample(await metricsText(stack.url), 'ollama_tokens_per_second_count', { model: 'llama3.2:latest' }), undefined);
  });

  it('streams with stream:true: the client gets every event, the gateway measures tokens and timing', async () => {
    stack.fake.next(spaced('openai-responses-stream.sse'), ENDPOINT);
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of await client.responses.create({ ...SKY, stream: true })) events.push(e);
    assert.equal(events.length, 38);
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    assert.equal(text, TEXT);
    const last = events[events.length - 1];
    assert.equal(last.type, 'response.completed');
    assert.ok(last.type === 'response.completed');
    assert.equal(last.response.status, 'completed');
    assert.deepEqual(last.response.usage, {
      input_tokens: 37,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 31,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 68,
    });

    assertBodyUntouched();
    assert.equal((JSON.parse(wire.sent[0].toString()) as { stream?: boolean }).stream, true);
    assert.deepEqual(await wire.received[0], fixture('openai-responses-stream.sse'), 'the stream is relayed byte for byte');
    await assertMetrics(stack, { model: 'llama3.2:latest', status: 200, input: 37, output: 31, deltas: 30 });
    const m = await metricsText(stack.url);
    // Output tokens over the time between the first and the last delta.
    assert.equal(sample(m, 'ollama_tokens_per_second_count', { model: 'llama3.2:latest' }), 1);
    assert.equal(sample(m, 'gen_ai_server_time_per_output_token_seconds_count', genAi(stack, 'llama3.2:latest')), 1);
  });

  it('streams with responses.stream(): the accumulated response has the text and the usage', async () => {
    stack.fake.next(spaced('openai-responses-stream.sse'), ENDPOINT);
    const stream = client.responses.stream(SKY);
    let deltas = '';
    stream.on('response.output_text.delta', (e) => (deltas += e.delta));
    const final = await stream.finalResponse();
    assert.equal(deltas, TEXT);
    assert.equal(final.status, 'completed');
    assert.equal(final.id, 'resp_52284');
    const message = final.output.find((o) => o.type === 'message');
    assert.ok(message?.type === 'message');
    assert.deepEqual(
      message.content.map((c) => (c.type === 'output_text' ? c.text : '')),
      [TEXT],
    );
    assert.equal(final.usage?.input_tokens, 37);
    assert.equal(final.usage?.output_tokens, 31);

    // The helper sets stream:true itself; the gateway forwards its body as it is.
    assertBodyUntouched();
    assert.equal((JSON.parse(wire.sent[0].toString()) as { stream?: boolean }).stream, true);
    assert.deepEqual(await wire.received[0], fixture('openai-responses-stream.sse'));
    await assertMetrics(stack, { model: 'llama3.2:latest', status: 200, input: 37, output: 31, deltas: 30 });
  });

  it('streams a reasoning model: relayed unchanged, reasoning and answer both counted as content', async () => {
    stack.fake.next(spaced('openai-responses-reasoning-stream.sse'), ENDPOINT);
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of await client.responses.create({ ...MATH, stream: true })) events.push(e);
    assert.equal(events.length, 82);
    assert.equal(events.flatMap((e) => (e.type === 'response.reasoning_summary_text.delta' ? [e.delta] : [])).join(''), REASONING);
    assert.equal(events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join(''), ANSWER);
    // Ollama never sends the reasoning summary part events OpenAI would send around these deltas.
    assert.equal(
      events.some((e) => e.type === 'response.reasoning_summary_part.added'),
      false,
    );
    const last = events[events.length - 1];
    assert.ok(last.type === 'response.completed');
    assert.equal(last.response.usage?.input_tokens, 18);
    assert.equal(last.response.usage?.output_tokens, 76);

    assertBodyUntouched();
    assert.deepEqual(await wire.received[0], fixture('openai-responses-reasoning-stream.sse'), 'the stream is relayed byte for byte');
    // 59 reasoning deltas and 12 answer deltas; thinking tokens are inside output_tokens.
    await assertMetrics(stack, { model: 'qwen3:8b', status: 200, input: 18, output: 76, deltas: 71 });
  });

  it('relays and measures the reasoning stream for the accumulating helper, whatever the helper makes of it', async () => {
    // openai@7.57.0's helper throws `missing content at index 0` on these bytes (fixtures README
    // §8.3: Ollama sends no reasoning_summary_part.added), and what the gateway then measures is
    // the helper abandoning the stream. 6.x's accumulator ignores reasoning summary deltas and gets
    // through, so with the installed 6.30.1 the whole stream passes and is measured. (Plain
    // iteration of the same bytes, which works with both, is the test above.)
    const helperThrows = Number(SDK_VERSION.split('.')[0]) >= 7;
    stack.fake.next(spaced('openai-responses-reasoning-stream.sse'), ENDPOINT);
    const stream = client.responses.stream(MATH);
    let outcome: OpenAI.Responses.Response | Error;
    try {
      outcome = await stream.finalResponse();
    } catch (err) {
      outcome = err as Error;
    }
    if (helperThrows) {
      assert.ok(outcome instanceof Error, `openai@${SDK_VERSION}'s helper was expected to throw`);
      assert.match(outcome.message, /missing content at index 0/);
      return;
    }
    assert.ok(!(outcome instanceof Error), `openai@${SDK_VERSION}'s helper threw: ${String(outcome)}`);
    assert.equal(outcome.status, 'completed');
    assert.deepEqual(
      outcome.output.map((o) => o.type),
      ['reasoning', 'message'],
    );
    const reasoning = outcome.output[0];
    assert.ok(reasoning.type === 'reasoning');
    assert.deepEqual(reasoning.summary, [{ text: REASONING, type: 'summary_text' }]);
    const message = outcome.output[1];
    assert.ok(message.type === 'message');
    assert.deepEqual(
      message.content.map((c) => (c.type === 'output_text' ? c.text : '')),
      [ANSWER],
    );
    assert.equal(outcome.usage?.output_tokens, 76);
    assert.deepEqual(await wire.received[0], fixture('openai-responses-reasoning-stream.sse'), 'the stream is relayed byte for byte');
    assertBodyUntouched();
    await stack.fake.idle();
    await assertMetrics(stack, { model: 'qwen3:8b', status: 200, input: 18, output: 76, deltas: 71 });
  });

  it("returns Ollama's 404 for an unknown model to the SDK as NotFoundError, counted upstream_4xx", async () => {
    await assert.rejects(client.responses.create({ model: 'llama3.3', input: 'Hello' }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${String(err)}`);
      assert.equal(err.status, 404);
      assert.equal(err.type, 'not_found_error');
      assert.match(err.message, /model 'llama3\.3' not found/);
      return true;
    });
    assert.deepEqual(await wire.received[0], fixture('error-openai-responses-model-not-found.json'));
    await assertMetrics(stack, { model: 'llama3.3:latest', status: 404, reason: 'upstream_4xx' });
  });

  it('returns the 404 to a stream:true request too, before any event', async () => {
    await assert.rejects(client.responses.create({ model: 'llama3.3', input: 'Hello', stream: true }), OpenAI.NotFoundError);
    assertBodyUntouched();
    await assertMetrics(stack, { model: 'llama3.3:latest', status: 404, reason: 'upstream_4xx' });
  });

  it('counts a response.failed stream (HTTP 200) as stream_error, without token counts', async () => {
    stack.fake.next(fixtureBehavior('error-openai-responses-failed.sse'), ENDPOINT);
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    const params = { model: 'llama3.3', input: SKY.input, tools: [{ type: 'web_search' as const }], stream: true as const };
    for await (const e of await client.responses.create(params)) events.push(e);
    assert.deepEqual(
      events.map((e) => e.type),
      ['response.created', 'response.in_progress', 'response.failed'],
    );
    const failed = events[2];
    assert.ok(failed.type === 'response.failed');
    assert.equal(failed.response.status, 'failed');
    assert.equal(failed.response.error?.message, "model 'llama3.3' not found");

    assertBodyUntouched();
    assert.deepEqual(await wire.received[0], fixture('error-openai-responses-failed.sse'));
    // The zeroed usage of response.failed is no count: neither tokens nor a token-usage observation.
    await assertMetrics(stack, { model: 'llama3.3:latest', status: 200, reason: 'stream_error' });
    const detail = stack.logs.find((l) => l.path === ENDPOINT && l.error === 'stream_error');
    assert.equal(detail?.detail, "model 'llama3.3' not found", 'the access log carries the failure message');
  });

  it('counts a stream that stops before response.completed as stream_error', async () => {
    stack.fake.next(spaced('error-openai-responses-midstream.sse'), ENDPOINT);
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of await client.responses.create({ ...SKY, stream: true })) events.push(e);
    // The SDK ends quietly: Ollama's stream just stops, HTTP-wise cleanly.
    assert.equal(events.length, 12);
    assert.equal(events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join(''), 'Once upon a time, on a rocky');
    assert.deepEqual(await wire.received[0], fixture('error-openai-responses-midstream.sse'));
    await assertMetrics(stack, { model: 'llama3.2:latest', status: 200, reason: 'stream_error', deltas: 8 });
  });

  it('counts a connection Ollama cuts mid-stream as stream_error, and the SDK sees the stream break', async () => {
    const body = fixture('openai-responses-stream.sse');
    // Cut inside the 11th output_text delta: 10 whole deltas have passed.
    let at = 0;
    for (let i = 0; i < 11; i++) at = body.indexOf('event: response.output_text.delta\n', at) + 1;
    stack.fake.next({ kind: 'reset-after', status: 200, contentType: 'text/event-stream', body, bytes: at + 20 }, ENDPOINT);
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    await assert.rejects(async () => {
      for await (const e of await client.responses.create({ ...SKY, stream: true })) events.push(e);
    });
    assert.equal(events.filter((e) => e.type === 'response.output_text.delta').length, 10);
    assert.equal(await wire.received[0], undefined, 'the body the client got broke off');
    const m = await metricsText(stack.url);
    const M = { model: 'llama3.2:latest' };
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: ENDPOINT, status: '200' }), 1);
    assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: ENDPOINT, reason: 'stream_error' }), 1);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), undefined);
    assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);
    assert.equal(sample(m, 'ollama_requests_in_flight', { ...M, endpoint: ENDPOINT }), 0);
  });
});

describe('OpenAI Responses API (SDK) with Ollama down', () => {
  it('gets the gateway’s 502 as an APIError in the OpenAI error shape, counted upstream_unreachable', async () => {
    const origin = `http://127.0.0.1:${await closedPort()}`;
    const gw = await startGatewayFor(origin);
    try {
      const { client, wire } = recordingClient(gw.url);
      await assert.rejects(client.responses.create({ ...SKY, stream: true }), (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError, `got ${String(err)}`);
        assert.equal(err.status, 502);
        assert.equal(err.type, 'api_error');
        assert.deepEqual(err.error, { message: `Ollama at ${origin} refused the connection`, type: 'api_error', param: null, code: null });
        assert.equal(err.message, `502 Ollama at ${origin} refused the connection`);
        return true;
      });
      assert.equal(wire.sent.length, 1, 'maxRetries 0: one attempt');
      const m = await metricsText(gw.url);
      const M = { model: 'llama3.2:latest' };
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: ENDPOINT, status: '502' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: ENDPOINT, reason: 'upstream_unreachable' }), 1);
      assert.equal(sample(m, 'ollama_tokens_processed_total', M), undefined);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), undefined);
    } finally {
      await gw.close();
    }
  });
});
