/**
 * The pure rules behind the lifecycle and context metrics: which requests only load or unload a
 * model (Ollama's GenerateHandler / ChatHandler), `keep_alive` as Ollama decodes it, what the
 * response's done_reason says, the context-window rules, and `/api/ps` context_length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contextUse, cutByTokenLimit, lifecycleOf, shiftPromptLimit, type CallFacts } from '../../otel/call';
import { parsePs } from '../../src/poller';
import { extractRequest, isZeroKeepAlive } from '../../src/request/extract';
import { LLM_ROUTES, type LlmRoute } from '../../src/routes';
import { fixture } from '../helpers/fixtures';

const route = (path: string): LlmRoute => {
  const r = LLM_ROUTES.find((x) => x.path === path);
  if (!r) throw new Error(path);
  return r;
};
const extract = (path: string, v: unknown) => extractRequest(route(path), Buffer.from(JSON.stringify(v)));

describe('keep_alive as Ollama decodes it', () => {
  it('is zero for 0 seconds, and for Go durations that add up to 0 ns', () => {
    for (const v of [
      0,
      -0,
      0.0,
      1e-10,
      '0',
      '+0',
      '-0',
      '0s',
      '0m',
      '0h',
      '0ms',
      '0us',
      '0\u00b5s',
      '0\u03bcs',
      '0ns',
      '0.0s',
      '.0s',
      '0.s',
      '-0s',
      '0h0m0s',
      '0.5ns',
      '00s',
    ])
      assert.equal(isZeroKeepAlive(v), true, JSON.stringify(v));
  });

  it('is not zero for a duration, "forever", or a value Ollama refuses', () => {
    for (const v of [1, 300, -1, 1e-9, '5m', '1ns', '-1s', '0.000000001s', '0s1ns', '', '00', ' 0', '0 s', '0x', 's', '.s', 'abc', null, true, [], {}, NaN])
      assert.equal(isZeroKeepAlive(v), false, JSON.stringify(v));
  });
});

describe('load and unload requests', () => {
  it('are /api/generate without a prompt and /api/chat without messages; keep_alive 0 unloads', () => {
    assert.equal(extract('/api/generate', { model: 'llama3.2' }).lifecycle, 'load');
    assert.equal(extract('/api/generate', { model: 'llama3.2', prompt: '' }).lifecycle, 'load');
    assert.equal(extract('/api/generate', { model: 'llama3.2', prompt: null, keep_alive: '10m' }).lifecycle, 'load');
    assert.equal(extract('/api/generate', { model: 'llama3.2', keep_alive: 0 }).lifecycle, 'unload');
    assert.equal(extract('/api/generate', { model: 'llama3.2', prompt: '', keep_alive: '0s' }).lifecycle, 'unload');
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: [] }).lifecycle, 'load');
    assert.equal(extract('/api/chat', { model: 'llama3.2' }).lifecycle, 'load', 'ChatHandler: len(req.Messages) == 0');
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: [], keep_alive: 0 }).lifecycle, 'unload');
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: null, keep_alive: '0m' }).lifecycle, 'unload');
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: [], keep_alive: -1 }).lifecycle, 'load', 'negative: keep forever');
  });

  it('are not generations, embeddings, the compatibility endpoints, or bodies Ollama refuses', () => {
    assert.equal(extract('/api/generate', { model: 'llama3.2', prompt: 'hi', keep_alive: 0 }).lifecycle, undefined);
    assert.equal(extract('/api/generate', { model: 'llama3.2', prompt: 5 }).lifecycle, undefined);
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }).lifecycle, undefined);
    assert.equal(extract('/api/chat', { model: 'llama3.2', messages: 'hi' }).lifecycle, undefined);
    assert.equal(extract('/api/embed', { model: 'all-minilm' }).lifecycle, undefined);
    assert.equal(extract('/v1/chat/completions', { model: 'llama3.2', messages: [] }).lifecycle, undefined);
    assert.equal(extract('/v1/completions', { model: 'llama3.2' }).lifecycle, undefined);
    assert.equal(extractRequest(route('/api/chat'), Buffer.from('not json')).lifecycle, undefined);
  });

  it('are confirmed or overruled by the done_reason of the answer', () => {
    const facts = (reason?: string): CallFacts => (reason === undefined ? {} : { finishReasons: [reason] });
    assert.equal(lifecycleOf('load', facts('load')), 'load');
    assert.equal(lifecycleOf('unload', facts('unload')), 'unload');
    assert.equal(lifecycleOf(undefined, facts('load')), 'load', 'the answer says load');
    assert.equal(lifecycleOf('load', facts('unload')), 'unload');
    assert.equal(lifecycleOf('load', facts('stop')), undefined, 'Ollama generated after all');
    assert.equal(lifecycleOf('load', facts()), 'load', 'no done_reason (an error): the request decides');
    assert.equal(lifecycleOf('load', undefined), 'load');
    assert.equal(lifecycleOf(undefined, facts('stop')), undefined);
  });
});

describe('the request context window', () => {
  it('reads num_ctx and num_keep from the native options only', () => {
    const native = extract('/api/chat', { model: 'm', messages: [{ role: 'user', content: 'hi' }], options: { num_ctx: 8192, num_keep: -1 } });
    assert.equal(native.numCtx, 8192);
    assert.equal(native.numKeep, -1);
    assert.equal(extract('/api/generate', { model: 'm', prompt: 'x', options: { num_ctx: 0 } }).numCtx, undefined);
    assert.equal(extract('/api/generate', { model: 'm', prompt: 'x', options: { num_ctx: 4096.5 } }).numCtx, undefined);
    assert.equal(extract('/api/generate', { model: 'm', prompt: 'x', options: { num_ctx: '4096' } }).numCtx, undefined);
    assert.equal(extract('/v1/chat/completions', { model: 'm', options: { num_ctx: 8192 } }).numCtx, undefined);
  });

  it("keeps each loaded model's context_length from /api/ps", () => {
    const loaded = parsePs(JSON.parse(fixture('ps.json').toString()));
    assert.deepEqual(
      loaded.map((m) => [m.model, m.contextLength]),
      [
        ['llama3.2:latest', 4096],
        ['all-minilm:latest', 512],
      ],
    );
    assert.equal(parsePs({ models: [{ name: 'old', size: 1 }] })[0]?.contextLength, undefined, 'Ollama before 0.10');
    assert.equal(parsePs({ models: [{ name: 'x', context_length: -1 }] })[0]?.contextLength, undefined);
  });
});

describe('context rules', () => {
  it("cut a too-long prompt to Ollama's contextShiftPromptLimit", () => {
    // The cases of Ollama's TestContextShiftPromptLimit (llm/llama_server_test.go).
    assert.equal(shiftPromptLimit(8, 3), 6);
    assert.equal(shiftPromptLimit(4096, 4), 2050);
    assert.equal(shiftPromptLimit(4096, 5), 2051);
    assert.equal(shiftPromptLimit(8, 99), 7);
    assert.equal(shiftPromptLimit(8, -1), 4);
    assert.equal(shiftPromptLimit(1, 0), 0);
  });

  it('measure (prompt + output) / window', () => {
    assert.deepEqual(contextUse(4096, 1024, 1024), { ratio: 0.5, promptTruncated: false, outputTruncated: false });
    assert.equal(contextUse(4096, 33, 8)?.ratio, 41 / 4096);
    assert.equal(contextUse(4096, 3000, 5000)?.ratio, 8000 / 4096, 'past the window: context shift');
  });

  it('count a prompt of exactly the length the token cut leaves as truncated, with and without BOS', () => {
    assert.equal(contextUse(4096, 2050, 10)?.promptTruncated, true);
    assert.equal(contextUse(4096, 2051, 10)?.promptTruncated, true);
    assert.equal(contextUse(4096, 2049, 10)?.promptTruncated, false);
    assert.equal(contextUse(4096, 2052, 10)?.promptTruncated, false);
    // num_keep moves the cut: 8192 − ⌊(8192 − 100)/2⌋ = 4146.
    assert.equal(contextUse(8192, 4146, 0, 100)?.promptTruncated, true);
    assert.equal(contextUse(8192, 4098, 0, 100)?.promptTruncated, false);
    // num_keep −1 keeps the whole prompt: the cut leaves C − 1.
    assert.equal(contextUse(4096, 4095, 0, -1)?.promptTruncated, true);
  });

  it('count a prompt in the last 5% of the window as truncated (messages dropped to fit)', () => {
    // 4096 − ⌊4096/20⌋ = 3892.
    assert.equal(contextUse(4096, 3891, 0)?.promptTruncated, false);
    assert.equal(contextUse(4096, 3892, 0)?.promptTruncated, true);
    assert.equal(contextUse(4096, 4096, 0)?.promptTruncated, true);
  });

  it('count a window that filled up during generation as output truncated', () => {
    assert.equal(contextUse(4096, 2050, 2044)?.outputTruncated, false);
    assert.equal(contextUse(4096, 2050, 2045)?.outputTruncated, true, 'P + O = C − 1: the slot is full');
    assert.equal(contextUse(4096, 100, 9000)?.outputTruncated, true);
  });

  it('say nothing without a usable window, or when the prompt is longer than the window', () => {
    assert.equal(contextUse(1, 0, 0), undefined);
    assert.equal(contextUse(0, 10, 0), undefined);
    assert.equal(contextUse(4096, 4097, 0), undefined, 'the model was reloaded with another window');
  });

  it('count answers cut by the token limit in every API', () => {
    assert.equal(cutByTokenLimit({ finishReasons: ['length'] }), true);
    assert.equal(cutByTokenLimit({ finishReasons: ['max_tokens'] }), true);
    assert.equal(cutByTokenLimit({ finishReasons: ['stop', 'length'] }), true, 'any choice');
    assert.equal(cutByTokenLimit({ finishReasons: ['stop'] }), false);
    assert.equal(cutByTokenLimit({ finishReasons: ['end_turn'] }), false);
    assert.equal(cutByTokenLimit({}), false);
  });
});
