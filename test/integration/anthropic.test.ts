/**
 * The gateway driven by the Anthropic SDK against Ollama's Anthropic Messages API (`POST
 * /v1/messages`, as Claude Code uses it): what the client receives, the exact metrics of each call,
 * errors in the Anthropic shape the SDK reads, and API keys in either of Anthropic's headers.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import Anthropic, {
  AnthropicError,
  APIError,
  AuthenticationError,
  BadRequestError,
  ContentTooLargeError,
  InternalServerError,
  NotFoundError,
} from '@anthropic-ai/sdk';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startGatewayFor, startStack, type TestStack } from '../helpers/gateway';

const EP = '/v1/messages';
const M = { model: 'llama3.2:latest' };
const Q = { model: 'qwen3:8b' };
const question = [{ role: 'user' as const, content: 'Why is the sky blue? Answer in one sentence.' }];
const TEXT =
  "The sky appears blue because molecules in Earth's atmosphere scatter shorter blue wavelengths of sunlight much more strongly than longer red ones — a process called Rayleigh scattering.";
const THINKING = "Okay, let's compute 17 times 23. Breaking it down: 17 times 20 is 340, and 17 times 3 is 51. Adding them gives 340 + 51 = 391.\n";
const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Get the weather in a given city',
  input_schema: { type: 'object' as const, properties: { city: { type: 'string', description: 'The city to get the weather for' } }, required: ['city'] },
};
/**
 * The pause between two events of a scripted stream, so that each reaches the gateway as a chunk
 * of its own and the inter-token count is exact (one gap per content event after the first).
 */
const GAP_MS = 10;

/** A client as Claude Code is started by `ollama launch claude` (`ANTHROPIC_AUTH_TOKEN=ollama`). */
function client(url: string): Anthropic {
  return new Anthropic({ baseURL: url, authToken: 'ollama', maxRetries: 0 });
}

/** A fixture stream served one event per write, `GAP_MS` apart. */
function paced(file: string): Behavior {
  const b = fixtureBehavior(file);
  assert.equal(b.kind, 'body');
  return b.kind === 'body' ? { ...b, gapMs: GAP_MS } : b;
}

async function withStack(env: Record<string, string>, fn: (stack: TestStack) => Promise<void>): Promise<void> {
  const stack = await startStack(env);
  try {
    await fn(stack);
  } finally {
    await stack.close();
  }
}

/** The GenAI attributes of a call of `model` through `stack`. */
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

/** The token counters of both families for `model` are exactly `input` and `output`, over `calls` calls. */
function assertTokens(m: string, stack: TestStack, model: string, input: number, output: number, calls = 1): void {
  assert.equal(sample(m, 'ollama_tokens_processed_total', { model }), input);
  assert.equal(sample(m, 'ollama_tokens_generated_total', { model }), output);
  assert.equal(sample(m, 'gen_ai_client_token_usage_sum', genAi(stack, model, { gen_ai_token_type: 'input' })), input);
  assert.equal(sample(m, 'gen_ai_client_token_usage_sum', genAi(stack, model, { gen_ai_token_type: 'output' })), output);
  assert.equal(sample(m, 'gen_ai_client_token_usage_count', genAi(stack, model, { gen_ai_token_type: 'input' })), calls);
  assert.equal(sample(m, 'gen_ai_client_token_usage_count', genAi(stack, model, { gen_ai_token_type: 'output' })), calls);
}

function assertNoErrors(m: string): void {
  assert.ok(!/^ollama_request_errors_total\{.*\} [1-9]/m.test(m), 'no request errors');
}

/** The Anthropic error body the gateway writes itself. */
function assertAnthropicError(err: APIError, type: string, message: RegExp): void {
  assert.equal(err.type, type);
  const body = err.error as { type?: unknown; error?: { type?: unknown; message?: unknown } };
  assert.deepEqual(Object.keys(body).sort(), ['error', 'type']);
  assert.equal(body.type, 'error');
  assert.deepEqual(Object.keys(body.error!).sort(), ['message', 'type']);
  assert.equal(body.error!.type, type);
  assert.match(String(body.error!.message), message);
}

describe('Anthropic SDK through the gateway', () => {
  it('answers a non-streamed messages.create and counts its usage', async () => {
    await withStack({}, async (stack) => {
      const res = await client(stack.url).messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question });
      assert.deepEqual(
        res.content.map((b) => (b.type === 'text' ? b.text : b.type)),
        [TEXT],
      );
      assert.equal(res.stop_reason, 'end_turn');
      assert.equal(res.usage.input_tokens, 37);
      assert.equal(res.usage.output_tokens, 31);
      assert.equal(res.id, 'msg_04a1e77d12cb5cf53f98e71b');
      const sent = stack.fake.last(EP)!;
      assert.equal(JSON.parse(sent.body.toString()).model, 'llama3.2', 'the body reaches Ollama as the SDK sent it');
      assert.ok(sent.headers['anthropic-version'], 'with the Anthropic headers');

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 1);
      assertTokens(m, stack, M.model, 37, 31);
      assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_count', genAi(stack, M.model)), 1);
      // One JSON answer: no stream timing.
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), undefined);
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), undefined);
      assertNoErrors(m);
    });
  });

  it('streams messages.create with stream:true as Ollama sends it, and counts the real usage, not the estimate', async () => {
    await withStack({}, async (stack) => {
      stack.fake.next(paced('anthropic-messages-stream.sse'), EP);
      const events: Anthropic.Messages.RawMessageStreamEvent[] = [];
      for await (const e of await client(stack.url).messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question, stream: true })) events.push(e);
      assert.equal(events.length, 35);
      assert.equal(events[0]!.type, 'message_start');
      assert.equal(events.at(-1)!.type, 'message_stop');
      let text = '';
      for (const e of events) if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
      assert.equal(text, TEXT);
      const start = events[0] as Anthropic.Messages.RawMessageStartEvent;
      assert.equal(start.message.usage.input_tokens, 12, "the client gets message_start's estimate unchanged");
      const delta = events.find((e): e is Anthropic.Messages.RawMessageDeltaEvent => e.type === 'message_delta')!;
      assert.equal(delta.delta.stop_reason, 'end_turn');
      assert.equal(delta.usage.input_tokens, 37);
      assert.equal(delta.usage.output_tokens, 31);

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 1);
      assertTokens(m, stack, M.model, 37, 31);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);
      assert.equal(sample(m, 'gen_ai_server_time_to_first_token_seconds_count', genAi(stack, M.model)), 1);
      // 30 text deltas, each its own chunk: 29 gaps.
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), 29);
      assert.equal(sample(m, 'ollama_tokens_per_second_count', M), 1);
      assertNoErrors(m);
    });
  });

  it('rebuilds the message with messages.stream().finalMessage()', async () => {
    await withStack({}, async (stack) => {
      stack.fake.next(paced('anthropic-messages-stream.sse'), EP);
      const msg = await client(stack.url).messages.stream({ model: 'llama3.2', max_tokens: 1024, messages: question }).finalMessage();
      assert.deepEqual(
        msg.content.map((b) => (b.type === 'text' ? b.text : b.type)),
        [TEXT],
      );
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.input_tokens, 37, 'the SDK too takes message_delta over the estimate');
      assert.equal(msg.usage.output_tokens, 31);
      assert.equal(JSON.parse(stack.fake.last(EP)!.body.toString()).stream, true);

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 1);
      assertTokens(m, stack, M.model, 37, 31);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), 29);
      assertNoErrors(m);
    });
  });

  it('streams thinking (qwen3:8b, thinking enabled): thinking and answer blocks, all deltas timed', async () => {
    await withStack({}, async (stack) => {
      stack.fake.next(paced('anthropic-messages-thinking-stream.sse'), EP);
      const msg = await client(stack.url)
        .messages.stream({
          model: 'qwen3:8b',
          max_tokens: 2048,
          thinking: { type: 'enabled', budget_tokens: 1024 },
          messages: [{ role: 'user', content: 'What is 17 * 23?' }],
        })
        .finalMessage();
      assert.equal(msg.content.length, 2);
      const [thinking, answer] = msg.content;
      assert.equal(thinking!.type, 'thinking');
      assert.equal(thinking!.type === 'thinking' ? thinking.thinking : '', THINKING);
      assert.equal(answer!.type === 'text' ? answer.text : answer!.type, '17 × 23 = **391**');
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.input_tokens, 18);
      assert.equal(msg.usage.output_tokens, 76);
      assert.deepEqual(JSON.parse(stack.fake.last(EP)!.body.toString()).thinking, { type: 'enabled', budget_tokens: 1024 });

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...Q, endpoint: EP, status: '200' }), 1);
      assertTokens(m, stack, Q.model, 18, 76);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', Q), 1);
      // 59 thinking and 12 answer deltas: 71 content chunks, 70 gaps.
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', Q), 70);
      assertNoErrors(m);
    });
  });

  it('streams a tool call: one tool_use block, stop reason tool_use', async () => {
    await withStack({}, async (stack) => {
      stack.fake.next(paced('anthropic-messages-tools-stream.sse'), EP);
      const msg = await client(stack.url)
        .messages.stream({ model: 'llama3.2', max_tokens: 1024, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'What is the weather in Tokyo?' }] })
        .finalMessage();
      assert.deepEqual(msg.content, [{ type: 'tool_use', id: 'call_k3x9q2mz', name: 'get_weather', input: { city: 'Tokyo' } }]);
      assert.equal(msg.stop_reason, 'tool_use');
      assert.equal(msg.usage.input_tokens, 186);
      assert.equal(msg.usage.output_tokens, 19);

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 1);
      assertTokens(m, stack, M.model, 186, 19);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);
      // The whole input arrives in one input_json_delta: one content chunk, no gap.
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), undefined);
      assertNoErrors(m);
    });
  });

  it("passes Ollama's own errors to the SDK unchanged: model not found is a NotFoundError, counted upstream_4xx", async () => {
    await withStack({}, async (stack) => {
      const anthropic = client(stack.url);
      const notFound = JSON.parse(fixture('error-anthropic-model-not-found.json').toString());
      const isNotFound = (err: unknown): boolean => {
        assert.ok(err instanceof NotFoundError, String(err));
        assert.equal(err.status, 404);
        assert.equal(err.type, 'not_found_error');
        assert.deepEqual(err.error, notFound);
        return true;
      };
      await assert.rejects(anthropic.messages.create({ model: 'llama3.3', max_tokens: 1024, messages: question }), isNotFound);
      await assert.rejects(anthropic.messages.stream({ model: 'llama3.3', max_tokens: 1024, messages: question }).finalMessage(), isNotFound);
      // Ollama's middleware refuses a max_tokens that is not positive itself.
      await assert.rejects(anthropic.messages.create({ model: 'llama3.2', max_tokens: 0, messages: question }), (err: unknown) => {
        assert.ok(err instanceof BadRequestError, String(err));
        assert.equal(err.type, 'invalid_request_error');
        return true;
      });

      const m = await metricsText(stack.url);
      const L = { model: 'llama3.3:latest' };
      assert.equal(sample(m, 'ollama_requests_total', { ...L, endpoint: EP, status: '404' }), 2);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...L, endpoint: EP, reason: 'upstream_4xx' }), 2);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '400' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: EP, reason: 'upstream_4xx' }), 1);
      // A name Ollama does not serve has its counts and no histogram.
      assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_count', genAi(stack, L.model, { error_type: '404' })), undefined);
      assert.equal(sample(m, 'ollama_tokens_processed_total', L), undefined);
    });
  });

  it('counts a stream Ollama broke off as stream_error with status 200, and records no estimated tokens', async () => {
    await withStack({}, async (stack) => {
      const anthropic = client(stack.url);
      stack.fake.next(paced('error-anthropic-midstream.sse'), EP);
      const events: Anthropic.Messages.RawMessageStreamEvent[] = [];
      // Plain iteration ends quietly: Ollama sends no error event.
      for await (const e of await anthropic.messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question, stream: true })) events.push(e);
      assert.equal(events.length, 10);
      assert.ok(!events.some((e) => e.type === 'message_stop'));
      let text = '';
      for (const e of events) if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
      assert.equal(text, 'Once upon a time, on a rocky');

      stack.fake.next(paced('error-anthropic-midstream.sse'), EP);
      await assert.rejects(anthropic.messages.stream({ model: 'llama3.2', max_tokens: 1024, messages: question }).finalMessage(), (err: unknown) => {
        assert.ok(err instanceof AnthropicError && !(err instanceof APIError), String(err));
        assert.match(err.message, /stream ended without producing a Message/);
        return true;
      });

      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 2);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: EP, reason: 'stream_error' }), 2);
      assert.equal(sample(m, 'gen_ai_client_operation_duration_seconds_count', genAi(stack, M.model, { error_type: 'stream_error' })), 2);
      // message_start's input_tokens (12) is Ollama's len/4 estimate, and no message_delta came.
      assert.equal(sample(m, 'ollama_tokens_processed_total', M), undefined);
      assert.equal(sample(m, 'ollama_tokens_generated_total', M), undefined);
      assert.equal(sample(m, 'gen_ai_client_token_usage_count', genAi(stack, M.model, { gen_ai_token_type: 'input' })), undefined);
      // The gateway's own timing holds for the part that came: 8 deltas each, 7 gaps each.
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 2);
      assert.equal(sample(m, 'ollama_inter_token_seconds_count', M), 14);
      assert.equal(
        sample(m, 'gen_ai_server_time_to_first_token_seconds_count', genAi(stack, M.model)),
        undefined,
        'failed calls are not in the server latency',
      );
    });
  });
});

describe('Errors the gateway writes on /v1/messages reach the Anthropic SDK in its own shape', () => {
  it('413 for a body over MAX_REQUEST_BODY_MB: a ContentTooLargeError, invalid_request_error, Ollama sees nothing', async () => {
    await withStack({ MAX_REQUEST_BODY_MB: '0.0001' }, async (stack) => {
      const long = [{ role: 'user' as const, content: 'Why is the sky blue? '.repeat(20) }];
      await assert.rejects(client(stack.url).messages.create({ model: 'llama3.2', max_tokens: 1024, messages: long }), (err: unknown) => {
        assert.ok(err instanceof ContentTooLargeError, String(err));
        assert.equal(err.status, 413);
        assertAnthropicError(err, 'invalid_request_error', /MAX_REQUEST_BODY_MB/);
        return true;
      });
      assert.equal(stack.fake.last(EP), undefined);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'unknown', endpoint: EP, status: '413' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'unknown', endpoint: EP, reason: 'body_too_large' }), 1);
    });
  });

  it('502 when Ollama is down: an InternalServerError, api_error, counted upstream_unreachable', async () => {
    // A port that nobody listens on.
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const gw = await startGatewayFor(`http://127.0.0.1:${port}`);
    try {
      const anthropic = client(gw.url);
      const is502 = (err: unknown): boolean => {
        assert.ok(err instanceof InternalServerError, String(err));
        assert.equal(err.status, 502);
        assertAnthropicError(err, 'api_error', /refused the connection/);
        return true;
      };
      await assert.rejects(anthropic.messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question }), is502);
      await assert.rejects(anthropic.messages.stream({ model: 'llama3.2', max_tokens: 1024, messages: question }).finalMessage(), is502);
      const m = await metricsText(gw.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '502' }), 2);
      assert.equal(sample(m, 'ollama_request_errors_total', { ...M, endpoint: EP, reason: 'upstream_unreachable' }), 2);
    } finally {
      await gw.close();
    }
  });
});

/** Records the headers of every request the SDK sends. */
function recordingFetch(sent: Headers[]): typeof fetch {
  return (input, init) => {
    sent.push(new Headers(init?.headers));
    return fetch(input, init);
  };
}

/**
 * A client that sends only the headers it is given: no credential of its own, and no search of the
 * environment or the config files for one.
 */
class HeadersOnlyClient extends Anthropic {
  protected override _shouldResolveDefaultCredentials(): boolean {
    return false;
  }
}

describe('API keys on /v1/messages', () => {
  const KEY = 'sk-gateway';

  it('admit the key as x-api-key or as Bearer (apiKey, authToken), refuse a wrong one in the Anthropic shape, and forward neither header', async () => {
    await withStack({ GATEWAY_API_KEYS: `other-key, ${KEY}` }, async (stack) => {
      const sent: Headers[] = [];
      const base = { baseURL: stack.url, maxRetries: 0, fetch: recordingFetch(sent) };
      const viaApiKey = new Anthropic({ ...base, apiKey: KEY });
      const viaAuthToken = new Anthropic({ ...base, authToken: KEY });
      const viaHeader = new HeadersOnlyClient({ ...base, apiKey: null, authToken: null, defaultHeaders: { 'x-api-key': KEY } });

      for (const [name, anthropic, header, value] of [
        // @anthropic-ai/sdk 1.15.0 sends `apiKey` as Bearer, as it does `authToken`.
        ['apiKey', viaApiKey, 'authorization', `Bearer ${KEY}`],
        ['authToken', viaAuthToken, 'authorization', `Bearer ${KEY}`],
        ['x-api-key', viaHeader, 'x-api-key', KEY],
      ] as const) {
        sent.length = 0;
        const res = await anthropic.messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question });
        assert.equal(res.content[0]!.type === 'text' ? res.content[0].text : '', TEXT, name);
        assert.equal(sent.length, 1, name);
        assert.equal(sent[0]!.get(header), value, `${name} sent ${header}`);
        assert.equal(sent[0]!.get(header === 'x-api-key' ? 'authorization' : 'x-api-key'), null, `${name} sent only ${header}`);
        // And the stream, the way Claude Code calls.
        stack.fake.next(fixtureBehavior('anthropic-messages-stream.sse'), EP);
        const msg = await anthropic.messages.stream({ model: 'llama3.2', max_tokens: 1024, messages: question }).finalMessage();
        assert.equal(msg.usage.output_tokens, 31, name);
      }

      const wrong = [
        new Anthropic({ ...base, apiKey: 'sk-wrong' }),
        new Anthropic({ ...base, authToken: 'sk-wrong' }),
        new HeadersOnlyClient({ ...base, apiKey: null, authToken: null, defaultHeaders: { 'x-api-key': 'sk-wrong' } }),
      ];
      const seen = stack.fake.requests.length;
      for (const anthropic of wrong) {
        await assert.rejects(anthropic.messages.create({ model: 'llama3.2', max_tokens: 1024, messages: question }), (err: unknown) => {
          assert.ok(err instanceof AuthenticationError, String(err));
          assert.equal(err.status, 401);
          assertAnthropicError(err, 'authentication_error', /^invalid API key$/);
          return true;
        });
      }
      assert.equal(stack.fake.requests.length, seen, 'Ollama saw none of the refused requests');

      const calls = stack.fake.requests.filter((r) => r.url === EP);
      assert.equal(calls.length, 6);
      for (const r of calls) {
        assert.equal(r.headers.authorization, undefined, 'Authorization is not forwarded');
        assert.equal(r.headers['x-api-key'], undefined, 'x-api-key is not forwarded');
        assert.ok(!r.rawHeaders.some((h) => h.includes(KEY)), 'the key reaches Ollama in no header');
      }
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: EP, status: '200' }), 6);
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'invalid', scope: 'api' }), 3);
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'missing', scope: 'api' }), undefined);
      assert.ok(!JSON.stringify(stack.logs).includes(KEY), 'keys never reach the log');
    });
  });

  it('take x-api-key on /v1/messages only; a missing key is refused in the Anthropic shape', async () => {
    await withStack({ GATEWAY_API_KEYS: KEY }, async (stack) => {
      const post = (path: string, headers: Record<string, string>, body: unknown) =>
        fetch(stack.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      const messages = { model: 'llama3.2', max_tokens: 1024, messages: question };

      const missing = await post(EP, {}, messages);
      assert.equal(missing.status, 401);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
      assert.deepEqual(await missing.json(), {
        type: 'error',
        error: { type: 'authentication_error', message: 'missing API key: send x-api-key: <key> or Authorization: Bearer <key>' },
      });
      assert.equal((await post(EP, { 'x-api-key': '' }, messages)).status, 401, 'an empty x-api-key is no key');
      assert.equal((await post(EP, { 'x-api-key': `${KEY} ${KEY}` }, messages)).status, 401);

      // Either header may hold the key; the other is still not forwarded.
      for (const headers of [
        { 'x-api-key': KEY, authorization: 'Bearer sk-wrong' },
        { 'x-api-key': 'sk-wrong', authorization: `Bearer ${KEY}` },
        { 'x-api-key': KEY, authorization: 'Basic c2stZ2F0ZXdheQ==' },
      ]) {
        const res = await post(EP, headers, messages);
        assert.equal(res.status, 200, JSON.stringify(headers));
        await res.arrayBuffer();
        const got = stack.fake.last(EP)!.headers;
        assert.equal(got.authorization, undefined);
        assert.equal(got['x-api-key'], undefined);
      }

      // Elsewhere the key goes as Bearer only, in each API's own error shape.
      const chat = await post('/api/chat', { 'x-api-key': KEY }, { model: 'llama3.2', stream: false });
      assert.equal(chat.status, 401);
      assert.deepEqual(await chat.json(), { error: 'missing API key: send Authorization: Bearer <key>' });
      const completions = await post('/v1/chat/completions', { 'x-api-key': KEY }, { model: 'llama3.2', messages: question });
      assert.equal(completions.status, 401);
      assert.equal(((await completions.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
      assert.equal((await fetch(`${stack.url}/api/tags`, { headers: { 'x-api-key': KEY } })).status, 401);

      const m = await metricsText(stack.url);
      // No key, an empty one, one with white space, and the three x-api-key calls elsewhere.
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'missing', scope: 'api' }), 6);
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'invalid', scope: 'api' }), undefined);
    });
  });
});
