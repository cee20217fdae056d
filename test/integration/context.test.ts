/**
 * The context window, as the gateway sees it: `ollama_context_used_ratio` from the request's
 * `num_ctx` or the loaded model's `/api/ps` `context_length`, nothing when the window is unknown;
 * `ollama_context_limit_hits_total` by kind; answers cut by the token limit in
 * `ollama_generation_truncated_total`; and, for streams that think, the time to the first answer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const M = { model: 'llama3.2:latest' };
const PROMPT = { ...M, kind: 'prompt_truncated' };
const OUTPUT = { ...M, kind: 'output_truncated' };
/** `context_length` of llama3.2 in test/fixtures/ps.json. */
const PS_WINDOW = 4096;
const CHAT = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };

async function post(stack: TestStack, path: string, body: unknown): Promise<number> {
  const res = await fetch(`${stack.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}

/** A fresh gateway; with `poll`, the poller on (every 50 ms) and one poll of test/fixtures/ps.json done. */
async function withStack(poll: boolean, fn: (stack: TestStack) => Promise<void>): Promise<void> {
  const stack = await startStack(poll ? { OLLAMA_POLL_INTERVAL_SECONDS: '0.05' } : {});
  try {
    if (poll) await stack.gw.poller!.pollNow();
    await fn(stack);
  } finally {
    await stack.close();
  }
}

/** A native chat stream whose final line reports `prompt` and `output` tokens. */
function chatAnswer(prompt: number, output: number, doneReason = 'stop'): Behavior {
  const body =
    '{"model":"llama3.2","created_at":"2026-11-25T19:00:00Z","message":{"role":"assistant","content":"a"},"done":false}\n' +
    `{"model":"llama3.2","created_at":"2026-11-25T19:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"${doneReason}","total_duration":100000000,"load_duration":1000000,"prompt_eval_count":${prompt},"prompt_eval_duration":50000000,"eval_count":${output},"eval_duration":40000000}\n`;
  return { kind: 'body', status: 200, contentType: 'application/x-ndjson', body: Buffer.from(body) };
}

/** A fixture with one JSON member changed. */
function edited(file: string, from: string, to: string): Behavior {
  const b = fixtureBehavior(file);
  if (b.kind !== 'body') throw new Error(file);
  const text = b.body.toString('utf8');
  assert.ok(text.includes(from), `${file} has ${from}`);
  return { ...b, body: Buffer.from(text.replace(from, to)) };
}

describe('context window used', () => {
  it("is (prompt + output) / the request's num_ctx", () =>
    withStack(false, async (stack) => {
      // generate-stream.ndjson: 33 prompt and 17 output tokens.
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'haiku', options: { num_ctx: 1024 } });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_used_ratio_count', M), 1);
      assert.equal(sample(m, 'ollama_context_used_ratio_sum', M), 50 / 1024);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '0.1' }), 1);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 0);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', OUTPUT), 0);
    }));

  it("is (prompt + output) / the loaded model's context_length from /api/ps", () =>
    withStack(true, async (stack) => {
      // chat-stream.ndjson: 37 + 31 tokens, in llama3.2's 4096.
      await post(stack, '/api/chat', CHAT);
      let m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_used_ratio_count', M), 1);
      assert.equal(sample(m, 'ollama_context_used_ratio_sum', M), 68 / PS_WINDOW);
      // The request's num_ctx wins over /api/ps: Ollama reloads the model with it.
      await post(stack, '/api/chat', { ...CHAT, options: { num_ctx: 136 } });
      m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_used_ratio_count', M), 2);
      assert.equal(sample(m, 'ollama_context_used_ratio_sum', M), 68 / PS_WINDOW + 0.5);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '0.4' }), 1);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '0.5' }), 2);
    }));

  it('is recorded on the OpenAI and Anthropic endpoints too, from /api/ps', () =>
    withStack(true, async (stack) => {
      await post(stack, '/v1/chat/completions', { ...CHAT, stream: true }); // 30 + 6 tokens
      await post(stack, '/v1/messages', { ...CHAT, max_tokens: 100 }); // 37 + 31 tokens
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_used_ratio_count', M), 2);
      assert.equal(sample(m, 'ollama_context_used_ratio_sum', M), 36 / PS_WINDOW + 68 / PS_WINDOW);
    }));

  it('records nothing when the window is unknown', () =>
    withStack(false, async (stack) => {
      // No poller and no num_ctx.
      await post(stack, '/api/chat', CHAT);
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'haiku', stream: false });
      const m = await metricsText(stack.url);
      assert.ok(!m.includes('ollama_context_used_ratio_count{'), 'no ratio series');
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 0);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', OUTPUT), 0);
    }));

  it('records nothing for a model that was not loaded at the last poll, nor for embeddings', () =>
    withStack(true, async (stack) => {
      await post(stack, '/api/chat', { model: 'qwen3:8b', messages: [{ role: 'user', content: '17*23' }] }); // not in ps.json
      await post(stack, '/api/embed', { model: 'all-minilm', input: 'sky' }); // in ps.json (512), but an embedding
      const m = await metricsText(stack.url);
      assert.ok(!m.includes('ollama_context_used_ratio_count{'), 'no ratio series');
    }));

  it('records nothing for a prompt longer than the window (the model was reloaded with another)', () =>
    withStack(true, async (stack) => {
      stack.fake.next(chatAnswer(5000, 10), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.ok(!m.includes('ollama_context_used_ratio_count{'), 'no ratio series');
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 0);
    }));
});

describe('context limit hits', () => {
  it('count a prompt of exactly the length Ollama cuts a too-long prompt to as prompt_truncated', () =>
    withStack(true, async (stack) => {
      // 4096 − ⌊(4096 − 4)/2⌋ = 2050; with BOS kept, 2051.
      stack.fake.next(chatAnswer(2050, 10), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      stack.fake.next(chatAnswer(2051, 10), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      stack.fake.next(chatAnswer(2052, 10), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 2);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', OUTPUT), 0);
      assert.equal(sample(m, 'ollama_context_used_ratio_count', M), 3);
    }));

  it('count a prompt in the last 5% of the window as prompt_truncated', () =>
    withStack(true, async (stack) => {
      stack.fake.next(chatAnswer(3891, 1), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      stack.fake.next(chatAnswer(3892, 1), '/api/chat');
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 1);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', OUTPUT), 0);
    }));

  it('follow the num_keep of the request', () =>
    withStack(false, async (stack) => {
      // 8192 − ⌊(8192 − 100)/2⌋ = 4146.
      stack.fake.next(chatAnswer(4146, 10), '/api/chat');
      await post(stack, '/api/chat', { ...CHAT, options: { num_ctx: 8192, num_keep: 100 } });
      stack.fake.next(chatAnswer(2050, 10), '/api/chat');
      await post(stack, '/api/chat', { ...CHAT, options: { num_ctx: 4096, num_keep: 100 } });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 1);
    }));

  it('count a window that filled up during generation as output_truncated', () =>
    withStack(true, async (stack) => {
      stack.fake.next(chatAnswer(1000, 3094), '/api/chat'); // 4094: one token short of full
      await post(stack, '/api/chat', CHAT);
      stack.fake.next(chatAnswer(1000, 3095), '/api/chat'); // 4095 = C − 1: the slot is full
      await post(stack, '/api/chat', CHAT);
      stack.fake.next(chatAnswer(1000, 9000), '/api/chat'); // generated on past a context shift
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', OUTPUT), 2);
      assert.equal(sample(m, 'ollama_context_limit_hits_total', PROMPT), 0);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '1' }), 2);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '2' }), 2);
      assert.equal(sample(m, 'ollama_context_used_ratio_bucket', { ...M, le: '4' }), 3);
    }));
});

describe('generations cut by the token limit', () => {
  it('count done_reason "length" (generate-length.ndjson)', () =>
    withStack(false, async (stack) => {
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'haiku', options: { num_predict: 8 } });
      await post(stack, '/api/generate', { model: 'llama3.2', prompt: 'haiku' }); // "stop"
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_generation_truncated_total', M), 1);
    }));

  it('count OpenAI finish_reason "length" and Anthropic stop_reason "max_tokens"', () =>
    withStack(false, async (stack) => {
      stack.fake.next(edited('openai-chat-nostream.json', '"finish_reason":"stop"', '"finish_reason":"length"'), '/v1/chat/completions');
      await post(stack, '/v1/chat/completions', CHAT);
      stack.fake.next(edited('anthropic-messages-nostream.json', '"stop_reason":"end_turn"', '"stop_reason":"max_tokens"'), '/v1/messages');
      await post(stack, '/v1/messages', { ...CHAT, max_tokens: 31 });
      await post(stack, '/v1/chat/completions', CHAT); // "stop"
      await post(stack, '/v1/messages', { ...CHAT, max_tokens: 100 }); // "end_turn"
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_generation_truncated_total', M), 2);
    }));

  it('are not counted for other answers', () =>
    withStack(false, async (stack) => {
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_generation_truncated_total', M), 0);
    }));
});

describe('time to first answer', () => {
  const Q = { model: 'qwen3:8b' };
  const THINKING = fixture('chat-thinking-stream.ndjson');
  const thinkingLines = THINKING.toString()
    .trim()
    .split('\n')
    .filter((l) => /"content":"","thinking":/.test(l)).length;

  it('is recorded for a native stream that thinks, after its thinking', () =>
    withStack(false, async (stack) => {
      stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: THINKING, gapMs: 5 }, '/api/chat');
      await post(stack, '/api/chat', { model: 'qwen3:8b', messages: [{ role: 'user', content: '17*23' }] });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', Q), 1);
      assert.equal(sample(m, 'ollama_time_to_first_answer_seconds_count', Q), 1);
      const ttft = sample(m, 'ollama_time_to_first_token_seconds_sum', Q)!;
      const ttfa = sample(m, 'ollama_time_to_first_answer_seconds_sum', Q)!;
      // The answer starts after the thinking lines, each ≥ 5 ms apart.
      assert.ok(ttfa - ttft >= (thinkingLines - 1) * 0.004, `first answer ${ttfa}s, first token ${ttft}s, ${thinkingLines} thinking lines`);
    }));

  it('is recorded for an Anthropic stream that thinks', () =>
    withStack(false, async (stack) => {
      await post(stack, '/v1/messages', { model: 'qwen3:8b', max_tokens: 200, stream: true, messages: [{ role: 'user', content: '17*23' }] });
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_time_to_first_answer_seconds_count', Q), 1);
      assert.ok(sample(m, 'ollama_time_to_first_answer_seconds_sum', Q)! >= sample(m, 'ollama_time_to_first_token_seconds_sum', Q)!);
    }));

  it('is not recorded for a stream that does not think', () =>
    withStack(false, async (stack) => {
      await post(stack, '/api/chat', CHAT);
      const m = await metricsText(stack.url);
      assert.equal(sample(m, 'ollama_time_to_first_token_seconds_count', M), 1);
      assert.ok(!m.includes('ollama_time_to_first_answer_seconds_count{'), 'no first-answer series');
    }));
});
