import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extractRequest } from '../../src/request/extract';
import { withIncludeUsage } from '../../src/request/include-usage';
import { normalizeModelName } from '../../src/request/model';
import { LLM_ROUTES, type LlmRoute } from '../../src/routes';

const route = (path: string): LlmRoute => {
  const r = LLM_ROUTES.find((x) => x.path === path);
  if (!r) throw new Error(path);
  return r;
};
const body = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('request extraction', () => {
  it('streams a native chat or generate request that says nothing about stream', () => {
    assert.equal(extractRequest(route('/api/chat'), body({ model: 'llama3.2' })).stream, true);
    assert.equal(extractRequest(route('/api/generate'), body({ model: 'llama3.2', stream: null })).stream, true);
    assert.equal(extractRequest(route('/api/chat'), body({ model: 'llama3.2', stream: false })).stream, false);
  });

  it('does not stream an OpenAI request unless stream is true', () => {
    assert.equal(extractRequest(route('/v1/chat/completions'), body({ model: 'm' })).stream, false);
    assert.equal(extractRequest(route('/v1/completions'), body({ model: 'm', stream: true })).stream, true);
  });

  it('never streams embeddings', () => {
    assert.equal(extractRequest(route('/api/embed'), body({ model: 'm', stream: true })).stream, false);
  });

  it('reads the generation parameters of both APIs', () => {
    const native = extractRequest(
      route('/api/chat'),
      body({ model: 'm', options: { temperature: 0.2, top_p: 0.9, top_k: 40, num_predict: 64, seed: 7, stop: ['\n'] } }),
    );
    assert.deepEqual(native.params, { temperature: 0.2, topP: 0.9, topK: 40, maxTokens: 64, seed: 7, stopSequences: ['\n'] });
    const openai = extractRequest(route('/v1/chat/completions'), body({ model: 'm', temperature: 1, max_tokens: 16, stop: 'END' }));
    assert.equal(openai.params.maxTokens, 16);
    assert.deepEqual(openai.params.stopSequences, ['END']);
  });

  it('marks a body that is not a JSON object as invalid, without throwing', () => {
    for (const raw of ['{"model":', '', '[1,2]', 'null', '"x"']) {
      const info = extractRequest(route('/api/chat'), Buffer.from(raw));
      assert.equal(info.body, undefined, raw);
      assert.equal(info.model, undefined);
    }
  });

  it('splices include_usage as the last member of a body without stream_options and keeps every other byte', () => {
    const raw = Buffer.from('  {"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"<b>é</b>"}]} ');
    const info = extractRequest(route('/v1/chat/completions'), raw);
    const out = withIncludeUsage(raw, info)!;
    assert.equal(
      out.toString(),
      '  {"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"<b>é</b>"}],"stream_options":{"include_usage":true}} ',
    );
    assert.equal(extractRequest(route('/v1/chat/completions'), out).includeUsage, true);
  });

  it('sets include_usage over an existing stream_options by a later member, which Go merges into it', () => {
    const raw = body({ model: 'm', stream: true, stream_options: { include_usage: false } });
    const out = withIncludeUsage(raw, extractRequest(route('/v1/chat/completions'), raw))!;
    assert.equal(out.toString(), '{"model":"m","stream":true,"stream_options":{"include_usage":false},"stream_options":{"include_usage":true}}');
    assert.equal(extractRequest(route('/v1/chat/completions'), out).includeUsage, true);
  });
});

describe('model names', () => {
  it('resolves a name without a tag to :latest, as Ollama does', () => {
    assert.equal(normalizeModelName('llama3.2'), 'llama3.2:latest');
    assert.equal(normalizeModelName('llama3.2:latest'), 'llama3.2:latest');
    assert.equal(normalizeModelName('qwen3:8b'), 'qwen3:8b');
    assert.equal(normalizeModelName('hf.co/org/repo'), 'hf.co/org/repo:latest');
    assert.equal(normalizeModelName('registry:5000/org/model'), 'registry:5000/org/model:latest');
    assert.equal(normalizeModelName(undefined), 'unknown');
    assert.equal(normalizeModelName('  '), 'unknown');
  });
});
