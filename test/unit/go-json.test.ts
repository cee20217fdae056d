/**
 * Go's encoding/json rules as the gateway's reader applies them, one rule per test (the
 * differential test checks the same against Go itself; these run without Go).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goFoldEquals } from '../../src/request/go-json';
import { goDurationIsZero, readRequest } from '../../src/request/read';
import { LLM_ROUTES } from '../../src/routes';

const route = (p: string) => LLM_ROUTES.find((r) => r.path === p)!;
const read = (p: string, body: string | Buffer) => readRequest(route(p), Buffer.from(body));

describe("Go's reading of a request body", () => {
  it('matches keys case-insensitively with Go folding: ſ for s, the Kelvin sign for k, nothing else', () => {
    assert.ok(goFoldEquals('stream', 'STREAM'));
    assert.ok(goFoldEquals('stream', 'ſtream'));
    assert.ok(goFoldEquals('top_k', 'TOP_\u212a'));
    assert.ok(!goFoldEquals('top_k', 'top-k'));
    assert.ok(!goFoldEquals('stream', 'ﬆream'));
    assert.ok(!goFoldEquals('think', 'thınk'));
    assert.equal(read('/v1/chat/completions', '{"ſtream":true,"MODEL":"m"}').stream, true);
    assert.equal(read('/v1/chat/completions', '{"\\u006dodel":"m"}').model, 'm');
  });

  it('applies duplicates in document order, the last one winning, and merges objects into the one before', () => {
    assert.equal(read('/api/chat', '{"model":"a","Model":"b","model":"a"}').model, 'a');
    assert.equal(read('/api/chat', '{"model":"a","MODEL":"b"}').model, 'b');
    const merged = read('/api/chat', '{"options":{"num_ctx":4096},"options":{"seed":1}}').options!;
    assert.deepEqual(
      [...merged.entries()],
      [
        ['num_ctx', 4096],
        ['seed', 1],
      ],
    );
    assert.equal(read('/v1/chat/completions', '{"stream_options":{"include_usage":true},"Stream_Options":{}}').includeUsage, true);
    assert.equal(read('/v1/chat/completions', '{"stream_options":{"include_usage":true},"stream_options":null}').includeUsage, null);
  });

  it('leaves a string or bool field as it was on null, and clears a pointer', () => {
    assert.equal(read('/api/chat', '{"model":"a","model":null}').model, 'a');
    assert.equal(read('/v1/chat/completions', '{"stream":true,"stream":null}').stream, true);
    assert.equal(read('/api/chat', '{"stream":false,"stream":null}').stream, null);
  });

  it('reuses the elements of a slice a later array is decoded into (element by element)', () => {
    const body = '{"messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}],"messages":[{"content":"z"}]}';
    // OpenAI messages merge into the old element; Ollama's own Message decodes each one afresh.
    assert.equal(read('/v1/chat/completions', body).firstUser, 'z');
    assert.equal(read('/api/chat', body).firstUser, null);
  });

  it('reads the first JSON value and ignores what follows', () => {
    const r = read('/api/chat', '{"model":"a"} {"model":"b"} garbage');
    assert.equal(r.ok, true);
    assert.equal(r.model, 'a');
    assert.equal(r.end, 13);
  });

  it('replaces invalid UTF-8 byte by byte, and lone surrogate escapes, with U+FFFD', () => {
    const bad = Buffer.concat([Buffer.from('{"model":"a'), Buffer.from([0xe2, 0x82]), Buffer.from('b","prompt":"\\ud800x\\ud83d\\ude00"}')]);
    const r = read('/api/generate', bad);
    assert.equal(r.model, 'a\ufffd\ufffdb');
    assert.equal(r.firstUser, '\ufffdx😀');
  });

  it('refuses what Go refuses: wrong types, numbers out of range, syntax, depth past 10,000, an empty body', () => {
    for (const body of [
      '{"stream":"yes"}',
      '{"model":1}',
      '{"options":{"num_ctx":1e400}}',
      '{"keep_alive":"5 minutes"}',
      '{"think":"HIGH"}',
      '{"model":"a",}',
      '\ufeff{}',
      '',
      ' \n',
      '[1]',
      '{"x":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}',
    ])
      assert.equal(read('/api/chat', body).ok, false, body.slice(0, 40));
    assert.equal(read('/api/chat', '{"x":' + '['.repeat(9_999) + ']'.repeat(9_999) + '}').ok, true);
    assert.equal(read('/v1/chat/completions', '{"max_tokens":1.5}').ok, false);
    assert.equal(read('/v1/chat/completions', '{"max_tokens":9223372036854775808}').ok, false);
  });

  it('reads a body nested 200,000 levels deep without recursion', () => {
    const r = read('/v1/chat/completions', '{"messages":[{"role":"user","content":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}]}');
    assert.equal(r.ok, false);
  });

  it("decides a zero keep_alive as Go's time.ParseDuration does, overflow and wrap-around included", () => {
    for (const s of ['0', '0s', '-0s', '+0', '0.0h', '0m0s', '0.0000000001s', '9223372036854775808ns9223372036854775808ns'])
      assert.equal(goDurationIsZero(s), true, s);
    for (const s of ['5m', '1ns', '.5ms', '-1s', '1µs']) assert.equal(goDurationIsZero(s), false, s);
    for (const s of ['', 's', '1', '1x', '.s', '9223372036854775808ns', '99999999999h']) assert.equal(goDurationIsZero(s), undefined, s);
  });
});
