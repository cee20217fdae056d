/**
 * `stream_options.include_usage` is spliced into an OpenAI stream's request body: one insertion
 * or one replaced value, every other byte as the client sent it (never a re-serialised body).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { extractRequest } from '../../src/request/extract';
import { includeUsageSplice, withIncludeUsage } from '../../src/request/include-usage';
import { LLM_ROUTES } from '../../src/routes';

const CHAT = LLM_ROUTES.find((r) => r.path === '/v1/chat/completions')!;

/** What the gateway sends for `body`, as a string. */
function sent(body: string): string {
  const raw = Buffer.from(body);
  return withIncludeUsage(raw, extractRequest(CHAT, raw)).toString();
}

describe('include_usage splice', () => {
  it('keeps a seed beyond 2^53 and a 1.0 exactly as sent, with stream_options present', () => {
    const body = '{"model":"llama3.2", "seed": 9007199254740993, "temperature": 1.0, "stream": true, "stream_options": {}}';
    assert.equal(sent(body), '{"model":"llama3.2", "seed": 9007199254740993, "temperature": 1.0, "stream": true, "stream_options": {"include_usage":true}}');
    const other = '{ "stream" : true ,\n  "stream_options" : { "continuous_usage_stats" : false } ,\n  "top_p" : 1.0E0 }';
    assert.equal(sent(other), '{ "stream" : true ,\n  "stream_options" : {"include_usage":true, "continuous_usage_stats" : false } ,\n  "top_p" : 1.0E0 }');
  });

  it('inserts the member after the opening brace when there is no stream_options', () => {
    const raw = '  {"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"<b>é</b>"}]}';
    assert.equal(sent(raw), '  {"stream_options":{"include_usage":true},"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"<b>é</b>"}]}');
    assert.equal(withIncludeUsage(Buffer.from('{ }'), extractRequest(CHAT, Buffer.from('{ }'))).toString(), '{"stream_options":{"include_usage":true} }');
  });

  it('replaces only the value of an include_usage that is not true', () => {
    assert.equal(sent('{"stream":true,"stream_options":{"include_usage":false,"x":1.50}}'), '{"stream":true,"stream_options":{"include_usage":true,"x":1.50}}');
    assert.equal(
      sent('{"stream":true,"stream_options":{"a":[1,{"b":"}"}],"include_usage" :  null }}'),
      '{"stream":true,"stream_options":{"a":[1,{"b":"}"}],"include_usage" :  true }}',
    );
    assert.equal(sent('{"stream":true,"stream_options":{"include_usage":"yes"}}'), '{"stream":true,"stream_options":{"include_usage":true}}');
    assert.equal(sent('{"stream":true,"stream_options":{"include_usage":{"deep":[true]}}}'), '{"stream":true,"stream_options":{"include_usage":true}}');
  });

  it('replaces a stream_options that is not an object with the object', () => {
    for (const v of ['null', 'false', 'true', '0', '-1.5e3', '"yes"', '[]', '[{"include_usage":true}]', '"{\\"include_usage\\":true}"']) {
      assert.equal(sent(`{"stream":true,"stream_options": ${v} ,"n":1.0}`), '{"stream":true,"stream_options": {"include_usage":true} ,"n":1.0}', v);
    }
  });

  it('does not take a "stream_options" inside a string or a nested object', () => {
    const inMessage = '{"messages":[{"role":"user","content":"say \\"stream_options\\":{\\"include_usage\\":false}"}],"stream":true}';
    assert.equal(sent(inMessage), '{"stream_options":{"include_usage":true},' + inMessage.slice(1));
    const nested = '{"metadata":{"stream_options":{"include_usage":false}},"stream":true}';
    assert.equal(sent(nested), '{"stream_options":{"include_usage":true},' + nested.slice(1));
    const asValue = '{"tag":"stream_options","stream":true,"stream_options":{}}';
    assert.equal(sent(asValue), '{"tag":"stream_options","stream":true,"stream_options":{"include_usage":true}}');
    const inner = '{"stream":true,"stream_options":{"x":{"include_usage":false},"y":"include_usage"}}';
    assert.equal(sent(inner), '{"stream":true,"stream_options":{"include_usage":true,"x":{"include_usage":false},"y":"include_usage"}}');
  });

  it('reads strings with escapes: quotes, backslashes, braces and \\u escapes', () => {
    const body = '{"a":"\\\\","b":"\\"}{","c":"\\\\\\"","d":"\\u007b\\u0022","stream":true,"stream_options":{"e":"\\\\\\\\"}}';
    assert.equal(sent(body), body.replace('"stream_options":{', '"stream_options":{"include_usage":true,'));
    // A key spelled with an escape is the same key for JSON.parse, so it is the member to change.
    const escapedKey = '{"stream":true,"stream\\u005foptions":{"include\\u005Fusage":false}}';
    assert.equal(sent(escapedKey), '{"stream":true,"stream\\u005foptions":{"include\\u005Fusage":true}}');
    const multibyte = '{"m":"日本語 🎉","stream":true,"stream_options":{"é":"ü"}}';
    assert.equal(sent(multibyte), '{"m":"日本語 🎉","stream":true,"stream_options":{"include_usage":true,"é":"ü"}}');
  });

  it('changes the last of duplicate members, the one JSON.parse keeps and Go applies last', () => {
    const body = '{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false,"include_usage":0}}';
    assert.equal(sent(body), '{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false,"include_usage":true}}');
  });

  it('leaves a body that already asks for usage, and one it cannot scan, unchanged', () => {
    const asks = Buffer.from('{"stream":true, "seed": 9007199254740993, "stream_options":{"include_usage":true}}');
    assert.equal(withIncludeUsage(asks, extractRequest(CHAT, asks)), asks);
    const broken = Buffer.from('{"stream":true,"stream_options":{');
    assert.equal(withIncludeUsage(broken, extractRequest(CHAT, broken)), broken);
    assert.throws(() => includeUsageSplice(Buffer.from('[1]')));
    assert.throws(() => includeUsageSplice(Buffer.from('{"a":1} x')));
  });

  it('scans a body nested 100 000 levels deep without overflowing the stack', () => {
    const deep = '{"stream":true,"x":' + '['.repeat(100_000) + ']'.repeat(100_000) + ',"stream_options":null}';
    const out = sent(deep);
    assert.equal(out, deep.replace('"stream_options":null', '"stream_options":{"include_usage":true}'));
  });
});

/** A JSON value, serialised with random blanks between tokens by `render`. */
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const key = fc
  .oneof(
    fc.constantFrom('stream_options', 'include_usage', 'model', 'stream', 'include_usage_x', 'stream_options\\'),
    fc.string({ unit: 'grapheme', maxLength: 8 }),
  )
  .filter((k) => k !== '__proto__');
const str = fc.oneof(fc.constantFrom('"stream_options":{', '\\', '"', '}{][', 'include_usage'), fc.string({ unit: 'grapheme', maxLength: 10 }));
const { value } = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x)), // JSON has no -0
    fc.integer(),
    str,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
}));
const streamOptions = fc.oneof(
  fc.constant(undefined),
  value,
  fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true }),
  fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true }).map((o) => ({ ...o, include_usage: false as Json })),
);
const blank = fc.array(fc.constantFrom(' ', '\t', '\n', '\r'), { maxLength: 3 }).map((b) => b.join(''));

/** `v` as JSON text, with blanks from `blanks` around every token. */
function render(v: Json, blanks: () => string): string {
  if (Array.isArray(v)) return '[' + blanks() + v.map((x) => render(x, blanks)).join(blanks() + ',' + blanks()) + blanks() + ']';
  if (v !== null && typeof v === 'object') {
    const members = Object.entries(v).map(([k, x]) => JSON.stringify(k) + blanks() + ':' + blanks() + render(x, blanks));
    return '{' + blanks() + members.join(blanks() + ',' + blanks()) + blanks() + '}';
  }
  return JSON.stringify(v);
}

describe('include_usage splice properties', () => {
  it('for any object and any blanks: the output parses to the input plus include_usage, and only the splice differs', () => {
    fc.assert(
      fc.property(
        fc.dictionary(key, value, { maxKeys: 6, noNullPrototype: true }),
        streamOptions,
        fc.array(blank, { minLength: 1, maxLength: 20 }),
        (members, so, blanks) => {
          delete members.stream_options;
          const input: Record<string, Json> = { ...members, stream: true };
          if (so !== undefined) input.stream_options = so;
          let n = 0;
          const raw = Buffer.from(blanks[0] + render(input, () => blanks[n++ % blanks.length]!) + blanks[1 % blanks.length]);
          const info = extractRequest(CHAT, raw);
          assert.deepEqual(info.body, input);
          const out = withIncludeUsage(raw, info);
          if (info.includeUsage) {
            assert.equal(out, raw);
            return;
          }
          // The output parses to the input with include_usage set.
          const soObject = so !== null && typeof so === 'object' && !Array.isArray(so);
          const expected = { ...input, stream_options: { ...(soObject ? so : {}), include_usage: true } };
          assert.deepEqual(JSON.parse(out.toString()), expected);
          // The output is the input with one splice: removing what it put in gives the input back.
          const { start, end, text } = includeUsageSplice(raw);
          assert.deepEqual(
            Buffer.concat([out.subarray(0, start), out.subarray(start + Buffer.byteLength(text))]),
            Buffer.concat([raw.subarray(0, start), raw.subarray(end)]),
          );
          assert.equal(out.subarray(start, start + Buffer.byteLength(text)).toString(), text);
          if (start === end) {
            // An insertion, right after an opening brace.
            assert.equal(raw[start - 1], 0x7b);
            assert.ok(['"stream_options":{"include_usage":true},', '"include_usage":true', '"include_usage":true,'].includes(text), text);
          } else {
            // A replacement of exactly one value's bytes: stream_options' own, or its include_usage's.
            const old: unknown = JSON.parse(raw.subarray(start, end).toString());
            if (soObject) assert.deepEqual(old, (so as Record<string, Json>).include_usage);
            else assert.deepEqual(old, so);
            assert.equal(text, soObject ? 'true' : '{"include_usage":true}');
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
