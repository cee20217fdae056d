/**
 * JSON bodies of any size are measured: within the cap the body is decoded whole; past it only its
 * first KiB and last 64 KiB are kept, and the statistics Ollama writes after the big arrays are
 * recovered from them. A big body they cannot be recovered from is counted as malformed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { responseReason } from '../../src/llm-call';
import { headMembers, JSON_HEAD_BYTES, JSON_TAIL_BYTES, JsonBodyParser, tailMembers } from '../../src/protocol/json';
import { MAX_INSPECT_BYTES, NO_CAPTURE, type CallSummary } from '../../src/protocol/summary';
import { fixture } from '../helpers/fixtures';

const MiB = 1024 * 1024;
const KiB = 1024;

/** An embedding row as Ollama writes it: float32 values in their shortest decimal form. */
const rows = new Map<string, string>();
function row(seed: number, dims = 384): string {
  const k = `${seed}/${dims}`;
  let r = rows.get(k);
  if (r === undefined) {
    const v: string[] = [];
    for (let i = 0; i < dims; i++) v.push(String(Number((Math.sin(seed * 7919 + i) * 0.12).toPrecision(8))));
    rows.set(k, (r = '[' + v.join(',') + ']'));
  }
  return r;
}

/** A `/api/embed` answer of at least `bytes` bytes (api.EmbedResponse, wire order). */
function embedBody(bytes: number, stats = ',"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8190'): Buffer {
  const rows: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const r = row(i % 16);
    rows.push(r);
    size += r.length + 1;
  }
  return Buffer.from('{"model":"all-minilm","embeddings":[' + rows.join(',') + ']' + stats + '}');
}

/** A `/v1/embeddings` answer of at least `bytes` bytes; `base64`: as sent for `encoding_format: "base64"`. */
function openaiEmbeddingsBody(bytes: number, base64 = false): Buffer {
  const items: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const vector = base64 ? JSON.stringify(Buffer.from(Float32Array.from({ length: 384 }, (_, k) => Math.cos(i + k)).buffer).toString('base64')) : row(i % 16);
    const item = `{"object":"embedding","embedding":${vector},"index":${i}}`;
    items.push(item);
    size += item.length + 1;
  }
  return Buffer.from('{"object":"list","data":[' + items.join(',') + '],"model":"all-minilm","usage":{"prompt_tokens":5120,"total_tokens":5120}}');
}

function chunksOf(body: Buffer, size = 64 * KiB): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out;
}

/** Feeds `chunks` to `p`, checking what it holds after each; returns the summary and the most held. */
function feed(p: JsonBodyParser, chunks: Buffer[], bound = Infinity): { s: CallSummary; most: number } {
  let most = 0;
  chunks.forEach((c, i) => {
    p.push(c);
    most = Math.max(most, p.heldBytes);
    assert.ok(p.heldBytes <= bound, `held ${p.heldBytes} bytes after chunk ${i}`);
  });
  return { s: p.end(), most };
}

describe('JSON bodies past the cap', () => {
  it('measures a 20 MB /api/embed answer in 64 KiB chunks, holding at most the cap plus 64 KiB', () => {
    const body = embedBody(20 * MiB);
    assert.ok(body.length > 20 * MiB);
    const started = performance.now();
    const { s, most } = feed(new JsonBodyParser(), chunksOf(body), MAX_INSPECT_BYTES + 64 * KiB);
    const ms = performance.now() - started;
    assert.equal(s.inputTokens, 8190);
    assert.equal(s.outputTokens, undefined);
    assert.equal(s.totalDurationNs, 14143917);
    assert.equal(s.loadDurationNs, 1019500);
    assert.equal(s.responseModel, 'all-minilm');
    assert.equal(s.complete, true);
    assert.equal(s.malformed, 0);
    assert.equal(s.inspected, true);
    assert.equal(responseReason(200, 'complete', s, false), undefined);
    assert.ok(most <= MAX_INSPECT_BYTES, `held ${most} bytes at most`);
    console.log(`# 20 MB /api/embed: ${body.length} bytes in ${ms.toFixed(1)} ms, ${most} bytes held at most`);
  });

  it('measures a 20 MB /v1/embeddings answer, floats or base64, whose model and usage follow the data', () => {
    for (const base64 of [false, true]) {
      const body = openaiEmbeddingsBody(20 * MiB, base64);
      const { s } = feed(new JsonBodyParser(), chunksOf(body), MAX_INSPECT_BYTES + 64 * KiB);
      assert.equal(s.inputTokens, 5120, `base64 ${base64}`);
      assert.equal(s.responseModel, 'all-minilm');
      assert.equal(s.complete, true);
      assert.equal(s.malformed, 0);
    }
  });

  it('gives the same answer for one 20 MB chunk and for 1-byte-to-1-MiB chunks, and keeps only the window after the cap', () => {
    const body = embedBody(20 * MiB);
    const whole = new JsonBodyParser();
    whole.push(body);
    assert.equal(whole.heldBytes, JSON_HEAD_BYTES + JSON_TAIL_BYTES);
    assert.deepEqual(whole.end(), feed(new JsonBodyParser(), chunksOf(body, 1 * MiB + 7)).s);
    const tiny = new JsonBodyParser(NO_CAPTURE, 4096);
    for (let i = 0; i < 20_000; i++) tiny.push(body.subarray(i, i + 1));
    tiny.push(body.subarray(20_000));
    assert.equal(tiny.end().inputTokens, 8190);
  });

  it('counts a big body without the statistics as malformed, so the call is a stream error', () => {
    for (const body of [
      embedBody(20 * MiB, ''), // the legacy shape: no metrics at all
      embedBody(10 * MiB, ',"total_duration":14143917'), // durations but no token count
      Buffer.from('{"embedding":' + row(1, 1_000_000) + '}'), // the legacy /api/embeddings shape, 11 MB
      embedBody(10 * MiB).subarray(0, 9 * MiB), // cut off before its end
      Buffer.concat([embedBody(10 * MiB), Buffer.from('garbage')]),
      Buffer.from('{"embeddings":"' + 'x'.repeat(10 * MiB) + '","prompt_eval_count":"eight"}'),
    ]) {
      const { s } = feed(new JsonBodyParser(), chunksOf(body), MAX_INSPECT_BYTES + 64 * KiB);
      assert.equal(s.malformed, 1);
      assert.equal(s.inputTokens, undefined);
      assert.equal(s.complete, false);
      assert.equal(responseReason(200, 'complete', s, false), 'stream_error');
    }
  });

  it('recovers the statistics when the tail starts inside a string of escapes', () => {
    // The big member is a string full of quotes and backslashes: the tail starts in it anywhere.
    const filler = '\\"\\\\'.repeat(3 * MiB);
    for (const cut of [0, 1, 2, 3]) {
      const body = Buffer.from(`{"model":"m","x":"${filler}${'a'.repeat(cut)}","prompt_eval_count":3,"eval_count":4,"total_duration":5}`);
      const { s } = feed(new JsonBodyParser(), chunksOf(body));
      assert.deepEqual([s.inputTokens, s.outputTokens, s.totalDurationNs, s.malformed], [3, 4, 5, 0], `cut ${cut}`);
    }
  });

  it('decodes a body within the cap whole, as before', () => {
    const s = feed(new JsonBodyParser(), chunksOf(fixture('embed.json'), 100)).s;
    assert.equal(s.inputTokens, 16);
    assert.equal(s.complete, true);
    const small = embedBody(7 * MiB);
    const t = feed(new JsonBodyParser(), chunksOf(small), MAX_INSPECT_BYTES).s;
    assert.equal(t.inputTokens, 8190);
  });
});

describe('the scans of the kept ends', () => {
  it('the head gives the members that end within it, the tail those that start within it', () => {
    assert.deepEqual(headMembers(Buffer.from(' {"model":"a,\\"}","n":[1,{"b":2}],"cut":"xx')), { model: 'a,"}', n: [1, { b: 2 }] });
    assert.equal(headMembers(Buffer.from('{"embeddings":[[1,2')), undefined);
    assert.equal(headMembers(Buffer.from('[1,2,3')), undefined);
    assert.deepEqual(tailMembers(Buffer.from('3]],"a":"\\",\\\\","u":{"p":1,"q":[2]}}\n')), { a: '",\\', u: { p: 1, q: [2] } });
    // A string whose start is before the tail: the scan stops where it cannot judge an escape.
    assert.deepEqual(tailMembers(Buffer.from('\\\\","a":1}')), { a: 1 });
    assert.deepEqual(tailMembers(Buffer.from('"x","a":1}')), { a: 1 });
    assert.equal(tailMembers(Buffer.from('"a":1}')), undefined);
    assert.equal(tailMembers(Buffer.from('"a":1')), undefined);
  });
});

// Properties: for any JSON object, any cap and window, and any chunking, every fact the parser
// reports is the fact the whole body gives; and when the members after the big one fit in the tail,
// all of them are found.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const FACTS = [
  'inputTokens',
  'outputTokens',
  'totalDurationNs',
  'loadDurationNs',
  'promptEvalDurationNs',
  'evalDurationNs',
  'responseModel',
  'responseId',
  'errorMessage',
] as const;
/** The response member each fact comes from (the usage-derived token counts aside). */
const FIELD_OF: Record<(typeof FACTS)[number], string> = {
  inputTokens: 'prompt_eval_count',
  outputTokens: 'eval_count',
  totalDurationNs: 'total_duration',
  loadDurationNs: 'load_duration',
  promptEvalDurationNs: 'prompt_eval_duration',
  evalDurationNs: 'eval_duration',
  responseModel: 'model',
  responseId: 'id',
  errorMessage: 'error',
};

const key = fc
  .oneof(
    fc.constantFrom(
      'model',
      'prompt_eval_count',
      'eval_count',
      'total_duration',
      'load_duration',
      'usage',
      'prompt_tokens',
      'completion_tokens',
      'id',
      'error',
    ),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
  )
  .filter((k) => k !== '__proto__');
const str = fc.oneof(fc.constantFrom('\\', '"', '\\"', '","a":1}', ']],"prompt_eval_count":9}', 'é🎉'), fc.string({ unit: 'grapheme', maxLength: 12 }));
const { value } = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.nat(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    str,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
}));
const dictionary = fc.dictionary(key, value, { maxKeys: 8, noNullPrototype: true });
/** Ollama's native statistics and an OpenAI usage object never share a body (their token counts would compete). */
const object = dictionary.filter((o) => !('usage' in o && ('prompt_eval_count' in o || 'eval_count' in o)));
const cuts = fc.array(fc.nat(), { maxLength: 20 });

function chunked(body: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(body.subarray(prev, p));
    prev = p;
  }
  out.push(body.subarray(prev));
  return out;
}

const wholeSummary = (body: Buffer): CallSummary => feed(new JsonBodyParser(NO_CAPTURE, Infinity), [body]).s;

describe('JSON body properties', () => {
  it('any object, cap, window and chunking: every fact reported is the whole body’s, within a bounded memory', () => {
    fc.assert(
      fc.property(object, fc.nat(300), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 128 }), cuts, (o, cap, headBytes, tailBytes, at) => {
        const body = Buffer.from(JSON.stringify(o));
        const whole = wholeSummary(body);
        const p = new JsonBodyParser(NO_CAPTURE, cap, { headBytes, tailBytes });
        const { s } = feed(p, chunked(body, at), Math.max(cap, headBytes + tailBytes));
        for (const f of FACTS) if (s[f] !== undefined) assert.deepEqual(s[f], whole[f], f);
        if (s.malformed === 0) assert.equal(s.complete, true);
        if (body.length <= Math.max(cap, headBytes + tailBytes)) assert.deepEqual(s, whole);
      }),
      { numRuns: 2000 },
    );
  });

  it('a big member followed by statistics that fit in the tail: all of them are found', () => {
    fc.assert(
      fc.property(object, value, object, fc.integer({ min: 1, max: 64 }), cuts, (before, big, after, headBytes, at) => {
        for (const k of Object.keys(after)) delete before[k];
        for (const k of ['big', 'usage']) {
          delete before[k];
          delete after[k];
        }
        after.prompt_eval_count = 7;
        const rest = JSON.stringify(after).slice(1); // the members after the big one, and the closing brace
        const body = Buffer.from(JSON.stringify({ ...before, big: [big, 'x'.repeat(200)] }).slice(0, -1) + ',' + rest);
        const whole = wholeSummary(body);
        assert.equal(whole.inputTokens, 7);
        const { s } = feed(new JsonBodyParser(NO_CAPTURE, 100, { headBytes, tailBytes: Buffer.byteLength(rest) + 1 }), chunked(body, at));
        // Never malformed where the whole body is not (a statistic out of Ollama's range is, in the
        // kept ends; in the middle, which is not decoded, it goes unseen).
        assert.ok(s.malformed <= whole.malformed);
        for (const f of FACTS) if (Object.prototype.hasOwnProperty.call(after, FIELD_OF[f])) assert.deepEqual(s[f], whole[f], f);
      }),
      { numRuns: 1000 },
    );
  });

  it('the default window is the documented one', () => {
    assert.equal(JSON_HEAD_BYTES, 4 * KiB);
    assert.equal(JSON_TAIL_BYTES, 64 * KiB);
  });
});
