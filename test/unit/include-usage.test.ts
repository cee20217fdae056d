/**
 * `stream_options.include_usage` is spliced into an OpenAI stream's request body as one inserted
 * last member, every other byte as the client sent it; Go's decoder then reads `include_usage: true`
 * whatever the client wrote (the differential test checks that against Go itself).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extractRequest } from '../../src/request/extract';
import { withIncludeUsage } from '../../src/request/include-usage';
import { LLM_ROUTES } from '../../src/routes';

const CHAT = LLM_ROUTES.find((r) => r.path === '/v1/chat/completions')!;

/** What the gateway sends for `body`, as a string. */
function sent(body: string | Buffer): string {
  const raw = Buffer.from(body);
  const out = withIncludeUsage(raw, extractRequest(CHAT, raw));
  assert.ok(out, 'spliced');
  return out.toString();
}

describe('include_usage splice', () => {
  it('keeps a seed beyond 2^53, a 1.0, key order and spacing exactly as sent', () => {
    const body = '{"model":"llama3.2", "seed": 9007199254740993, "temperature": 1.0, "stream": true, "stream_options": {} }';
    assert.equal(sent(body), body.slice(0, -1) + ',"stream_options":{"include_usage":true}}');
    assert.equal(sent('{ }'), '{ "stream_options":{"include_usage":true}}');
  });

  it('asks for usage whatever spelling or duplicate of stream_options or include_usage the client used', () => {
    for (const body of [
      '{"stream":true,"STREAM_OPTIONS":{"INCLUDE_USAGE":false}}',
      '{"stream":true,"stream_options":{"include_usage":true,"Include_Usage":false}}',
      '{"stream":true,"ſtream_options":{"include_uſage":false}}',
      '{"stream":true,"stream_options":{"include_usage":true},"stream_options":null}',
      '{"stream":true,"stream\\u005foptions":{"include\\u005Fusage":false}}',
    ]) {
      const info = extractRequest(CHAT, Buffer.from(body));
      assert.equal(info.stream, true, body);
      assert.equal(info.includeUsage, false, body);
      const out = Buffer.from(sent(body));
      assert.equal(out.toString(), body.slice(0, -1) + ',"stream_options":{"include_usage":true}}');
      assert.equal(extractRequest(CHAT, out).includeUsage, true, body);
    }
  });

  it('leaves bytes after the first JSON value as sent (Go never reads them)', () => {
    const body = '{"stream":true} {"stream_options":{"include_usage":false}}x';
    assert.equal(sent(body), '{"stream":true,"stream_options":{"include_usage":true}} {"stream_options":{"include_usage":false}}x');
  });

  it('leaves a body that already asks for usage (in any spelling) unchanged', () => {
    for (const body of [
      '{"stream":true, "seed": 9007199254740993, "stream_options":{"include_usage":true}}',
      '{"stream":true,"STREAM_OPTIONS":{"include_uſage":true}}',
    ]) {
      const raw = Buffer.from(body);
      assert.equal(withIncludeUsage(raw, extractRequest(CHAT, raw)), raw);
    }
  });

  it('splices a body nested 9,000 levels deep without recursion', () => {
    const deep = '{"stream":true,"x":' + '['.repeat(9_000) + ']'.repeat(9_000) + ',"stream_options":null}';
    assert.equal(sent(deep), deep.slice(0, -1) + ',"stream_options":{"include_usage":true}}');
  });

  it('does not splice a body Go refuses: Ollama answers it 400 and nothing streams', () => {
    for (const body of [
      '{"stream":true,"stream_options":{"include_usage":"yes"}}',
      '{"stream":true,"x":' + '['.repeat(10_001) + ']'.repeat(10_001) + '}',
      '{"stream":true',
    ]) {
      const info = extractRequest(CHAT, Buffer.from(body));
      assert.equal(info.readable, false);
      assert.equal(info.stream, false);
      assert.equal(info.model, undefined);
    }
  });
});
