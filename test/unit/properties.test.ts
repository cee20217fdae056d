/**
 * Property-based tests of the stream parsers: for any valid Ollama or OpenAI stream and any way of
 * cutting it into chunks, the result equals the result for the uncut stream; the usage stripper
 * turns any include_usage stream into exactly the stream without usage; and arbitrary bytes never
 * make a parser throw.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { JsonBodyParser } from '../../src/protocol/json';
import { NdjsonParser } from '../../src/protocol/ndjson';
import { SseParser } from '../../src/protocol/sse';
import { SseUsageStripper } from '../../src/protocol/sse-usage';
import { NO_CAPTURE, type ResponseParser } from '../../src/protocol/summary';
import { parseWhole, stable } from '../helpers/split';

/** Text as models produce it: any Unicode, including quotes, newlines and multi-byte characters. */
const text = fc.string({ unit: 'grapheme', maxLength: 12 });

const ndjsonStream = fc
  .record({
    words: fc.array(text, { maxLength: 40 }),
    promptTokens: fc.nat(100_000),
    evalNs: fc.integer({ min: 1, max: 10 ** 12 }),
    withError: fc.boolean(),
  })
  .map(({ words, promptTokens, evalNs, withError }) => {
    const lines = words.map((w) =>
      JSON.stringify({ model: 'llama3.2', created_at: '2026-11-25T19:20:14Z', message: { role: 'assistant', content: w }, done: false }),
    );
    lines.push(
      withError
        ? JSON.stringify({ error: 'an error was encountered while running the model: unexpected EOF' })
        : JSON.stringify({
            model: 'llama3.2',
            created_at: '2026-11-25T19:20:15Z',
            message: { role: 'assistant', content: '' },
            done: true,
            done_reason: 'stop',
            prompt_eval_count: promptTokens,
            eval_count: words.length,
            eval_duration: evalNs,
          }),
    );
    return { body: Buffer.from(lines.map((l) => l + '\n').join('')), words: words.length, promptTokens, withError };
  });

const sseStream = fc
  .record({ words: fc.array(text, { maxLength: 30 }), usage: fc.boolean(), completions: fc.boolean() })
  .map(({ words, usage, completions }) => {
    const zero = completions && usage ? ',"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}' : '';
    const chunk = (choices: string) =>
      `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":${choices}${zero}}\n\n`;
    let withUsage = '';
    let without = '';
    for (const w of words) {
      const c = chunk(`[{"index":0,"delta":{"content":${JSON.stringify(w)}},"finish_reason":null}]`);
      withUsage += c;
      without += c.replace(zero, '');
    }
    const fin = chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]');
    withUsage += fin;
    without += fin.replace(zero, '');
    if (usage)
      withUsage += `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":${words.length},"total_tokens":${7 + words.length}}}\n\n`;
    withUsage += 'data: [DONE]\n\n';
    without += 'data: [DONE]\n\n';
    return { withUsage: Buffer.from(withUsage), without: Buffer.from(without), words: words.length, usage };
  });

/** Cut points inside a body of length n, as chunk boundaries. */
function chunked(body: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(body.subarray(prev, p));
    prev = p;
  }
  out.push(body.subarray(prev));
  return out;
}

function feed(parser: ResponseParser, chunks: Buffer[]) {
  chunks.forEach((c, i) => parser.push(c, i));
  return parser.end(chunks.length);
}

const cuts = fc.array(fc.nat(), { maxLength: 30 });

describe('stream parser properties', () => {
  it('NDJSON: any chunking gives the uncut result, and the final statistics', () => {
    fc.assert(
      fc.property(ndjsonStream, cuts, (s, c) => {
        const whole = parseWhole(new NdjsonParser(), s.body);
        assert.deepEqual(stable(feed(new NdjsonParser(), chunked(s.body, c))), stable(whole));
        assert.equal(whole.contentEvents, s.words);
        assert.equal(whole.malformed, 0);
        if (s.withError) assert.ok(whole.errorMessage && !whole.complete);
        else assert.ok(whole.complete && whole.inputTokens === s.promptTokens && whole.outputTokens === s.words);
      }),
      { numRuns: 300 },
    );
  });

  it('NDJSON with text capture: any chunking collects the same answer text', () => {
    const opts = { captureText: true, maxTextChars: 1_000_000 };
    fc.assert(
      fc.property(ndjsonStream, cuts, (s, c) => {
        assert.equal(feed(new NdjsonParser(opts), chunked(s.body, c)).outputText, parseWhole(new NdjsonParser(opts), s.body).outputText);
      }),
      { numRuns: 150 },
    );
  });

  it('SSE: any chunking gives the uncut result', () => {
    fc.assert(
      fc.property(sseStream, cuts, (s, c) => {
        const whole = parseWhole(new SseParser(), s.withUsage);
        assert.deepEqual(stable(feed(new SseParser(), chunked(s.withUsage, c))), stable(whole));
        assert.equal(whole.complete, true);
        assert.equal(whole.contentEvents, s.words);
        if (s.usage) assert.equal(whole.outputTokens, s.words);
      }),
      { numRuns: 300 },
    );
  });

  it('usage stripper: any chunking of an include_usage stream gives exactly the stream without usage', () => {
    fc.assert(
      fc.property(
        sseStream.filter((s) => s.usage),
        cuts,
        (s, c) => {
          const st = new SseUsageStripper();
          const out = Buffer.concat([...chunked(s.withUsage, c).map((x) => st.push(x)), st.end()]);
          assert.deepEqual(out, s.without);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('with a small cap: any chunking gives the uncut result, and no parser or stripper holds more than the cap', () => {
    const cap = fc.integer({ min: 1, max: 400 });
    fc.assert(
      fc.property(ndjsonStream, sseStream, cuts, cap, (nd, sse, c, max) => {
        const ndjson = new NdjsonParser(NO_CAPTURE, max);
        const events = new SseParser(NO_CAPTURE, max);
        const st = new SseUsageStripper(max);
        const out: Buffer[] = [];
        chunked(nd.body, c).forEach((x, i) => {
          ndjson.push(x, i);
          assert.ok(ndjson.heldBytes <= max);
        });
        chunked(sse.withUsage, c).forEach((x, i) => {
          events.push(x, i);
          out.push(st.push(x));
          assert.ok(events.heldBytes <= max && st.heldBytes <= max);
        });
        out.push(st.end());
        assert.deepEqual(stable(ndjson.end(0)), stable(parseWhole(new NdjsonParser(NO_CAPTURE, max), nd.body)));
        assert.deepEqual(stable(events.end(0)), stable(parseWhole(new SseParser(NO_CAPTURE, max), sse.withUsage)));
        const whole = new SseUsageStripper(max);
        assert.deepEqual(Buffer.concat(out), Buffer.concat([whole.push(sse.withUsage), whole.end()]));
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes never make a parser or the stripper throw', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (raw) => {
        const chunks = raw.map((u) => Buffer.from(u));
        for (const p of [
          new NdjsonParser({ captureText: true, maxTextChars: 100 }),
          new SseParser({ captureText: true, maxTextChars: 100 }),
          new JsonBodyParser(),
        ])
          feed(p, chunks);
        const st = new SseUsageStripper();
        const out = Buffer.concat([...chunks.map((x) => st.push(x)), st.end()]);
        // Without a usage event or member, nothing is removed: garbage passes through unchanged.
        const all = Buffer.concat(chunks);
        if (!all.includes('"choices":[]') && !all.includes(',"usage":{')) assert.deepEqual(out, all);
      }),
      { numRuns: 500 },
    );
  });
});
