/**
 * Hostile framing: an upstream that sends one enormous NDJSON line or SSE event, or never ends it,
 * must cost the gateway linear time and bounded memory. The parsers hold at most
 * `MAX_INSPECT_BYTES` of an unfinished line or event, skip the rest of a longer one to its
 * terminator and count it as `oversized`; the usage stripper forwards such an event unchanged as
 * it arrives. Cost is measured without clocks, by counting the bytes `Buffer.concat` copies and
 * `indexOf` searches.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NdjsonParser } from '../../src/protocol/ndjson';
import { SseParser } from '../../src/protocol/sse';
import { SseUsageStripper } from '../../src/protocol/sse-usage';
import { MAX_INSPECT_BYTES, NO_CAPTURE } from '../../src/protocol/summary';
import { everySplit } from '../helpers/split';
import { bigJson, bytesConcatenated, bytesSearched, CHUNK, chunksOf } from '../helpers/stream-costs';

const MiB = 1024 * 1024;

const sseContent = (text: string) =>
  `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"llama3.2","choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}},"finish_reason":null}]}\n\n`;
const SSE_FINISH =
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"llama3.2","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n';
const SSE_USAGE =
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"llama3.2","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n';
const SSE_DONE = 'data: [DONE]\n\n';
const TINY = 'data: {"a":1}\n\n';
/** A 64 KB chunk of tiny content events. */
const tinyEvents = () => Buffer.from(TINY.repeat(Math.floor(CHUNK / TINY.length)));

const ndContent = (text: string) =>
  JSON.stringify({ model: 'llama3.2', created_at: '2026-11-25T19:20:14Z', message: { role: 'assistant', content: text }, done: false }) + '\n';
const ND_DONE =
  JSON.stringify({
    model: 'llama3.2',
    created_at: '2026-11-25T19:20:15Z',
    message: { role: 'assistant', content: '' },
    done: true,
    done_reason: 'stop',
    prompt_eval_count: 7,
    eval_count: 3,
  }) + '\n';

describe('SSE parser against a huge event', () => {
  it('holds at most MAX_INSPECT_BYTES while a 24 MB event without its blank line arrives in 64 KB chunks', () => {
    const p = new SseParser();
    let most = 0;
    for (const c of chunksOf(Buffer.from('data: ' + bigJson(24 * MiB)))) {
      p.push(c, 0);
      most = Math.max(most, p.heldBytes);
      assert.ok(p.heldBytes <= MAX_INSPECT_BYTES, `held ${p.heldBytes} bytes`);
    }
    assert.ok(most > MAX_INSPECT_BYTES - CHUNK);
    const s = p.end(1);
    assert.equal(s.oversized, 1);
    assert.equal(s.malformed, 0);
    assert.equal(s.contentEvents, 0);
  });

  it('skips a 24 MB event to its blank line, counts it as oversized, and reads the events after it', () => {
    const body = Buffer.from(
      sseContent('Hi') + 'data: ' + bigJson(24 * MiB) + '\n\n' + sseContent(' there') + sseContent('!') + SSE_FINISH + SSE_USAGE + SSE_DONE,
    );
    const p = new SseParser();
    chunksOf(body).forEach((c, i) => p.push(c, i));
    const s = p.end(1000);
    assert.equal(s.oversized, 1);
    assert.equal(s.malformed, 0);
    assert.equal(s.contentEvents, 3);
    assert.equal(s.outputTokens, 3);
    assert.deepEqual(s.finishReasons, ['stop']);
    assert.equal(s.complete, true);
  });

  it('joins a 6 MB event once, not once per 64 KB chunk (bytes copied by Buffer.concat)', () => {
    const body = Buffer.from('data: ' + bigJson(6 * MiB) + '\n\n' + SSE_DONE);
    const p = new SseParser();
    const copied = bytesConcatenated(() => chunksOf(body).forEach((c) => p.push(c, 0)));
    assert.ok(copied <= 2 * body.length, `copied ${copied} bytes for a ${body.length}-byte body`);
    assert.equal(p.end(1).contentEvents, 1);
  });

  it('skips a 24 MB event without joining it chunk by chunk (bytes copied by Buffer.concat)', () => {
    const body = Buffer.from('data: ' + bigJson(24 * MiB) + '\n\n' + SSE_DONE);
    const p = new SseParser();
    const copied = bytesConcatenated(() => chunksOf(body).forEach((c) => p.push(c, 0)));
    assert.ok(copied <= 2 * body.length, `copied ${copied} bytes for a ${body.length}-byte body`);
    assert.equal(p.end(1).oversized, 1);
  });

  it('searches a 64 KB chunk of tiny events a few times, not once per event (bytes covered by indexOf)', () => {
    const body = tinyEvents();
    const p = new SseParser();
    const searched = bytesSearched(() => p.push(body, 0));
    assert.ok(searched <= 4 * body.length, `searched ${searched} bytes of a ${body.length}-byte chunk`);
    assert.equal(p.end(1).contentEvents, body.length / TINY.length);
  });
});

describe('SSE usage stripper against a huge event', () => {
  it('forwards a 24 MB event unchanged as it arrives, holding back at most MAX_INSPECT_BYTES, and still strips the usage event after it', () => {
    const big = 'data: ' + bigJson(24 * MiB) + '\n\n';
    const head = sseContent('Hi');
    const input = Buffer.from(head + big + SSE_FINISH + SSE_USAGE + SSE_DONE);
    const st = new SseUsageStripper();
    const out: Buffer[] = [];
    let pushed = 0;
    let forwarded = 0;
    for (const c of chunksOf(input)) {
      const o = st.push(c);
      out.push(o);
      pushed += c.length;
      forwarded += o.length;
      assert.ok(pushed - forwarded <= MAX_INSPECT_BYTES, `holding back ${pushed - forwarded} bytes`);
    }
    out.push(st.end());
    assert.ok(Buffer.concat(out).equals(Buffer.from(head + big + SSE_FINISH + SSE_DONE)));
  });

  it('searches a 64 KB chunk of tiny events a few times, not once per event (bytes covered by indexOf)', () => {
    const body = tinyEvents();
    const st = new SseUsageStripper();
    let out: Buffer = Buffer.alloc(0);
    const searched = bytesSearched(() => (out = st.push(body)));
    assert.ok(searched <= 4 * body.length, `searched ${searched} bytes of a ${body.length}-byte chunk`);
    assert.ok(out.equals(body));
  });
});

describe('NDJSON parser against a huge line', () => {
  it('holds at most MAX_INSPECT_BYTES while a 24 MB line without its newline arrives in 64 KB chunks', () => {
    const p = new NdjsonParser();
    let most = 0;
    for (const c of chunksOf(Buffer.from(bigJson(24 * MiB)))) {
      p.push(c, 0);
      most = Math.max(most, p.heldBytes);
      assert.ok(p.heldBytes <= MAX_INSPECT_BYTES, `held ${p.heldBytes} bytes`);
    }
    assert.ok(most > MAX_INSPECT_BYTES - CHUNK);
    const s = p.end(1);
    assert.equal(s.oversized, 1);
    assert.equal(s.malformed, 0);
  });

  it('skips a 24 MB line to its newline, counts it as oversized, and reads the lines after it', () => {
    const body = Buffer.from(ndContent('Hi') + bigJson(24 * MiB) + '\n' + ndContent(' there') + ndContent('!') + ND_DONE);
    const p = new NdjsonParser();
    chunksOf(body).forEach((c, i) => p.push(c, i));
    const s = p.end(1000);
    assert.equal(s.oversized, 1);
    assert.equal(s.malformed, 0);
    assert.equal(s.contentEvents, 3);
    assert.equal(s.outputTokens, 3);
    assert.equal(s.complete, true);
  });

  it('joins a 6 MB line once, not once per 64 KB chunk (bytes copied by Buffer.concat)', () => {
    const body = Buffer.from(bigJson(6 * MiB) + '\n' + ND_DONE);
    const p = new NdjsonParser();
    const copied = bytesConcatenated(() => chunksOf(body).forEach((c) => p.push(c, 0)));
    assert.ok(copied <= 2 * body.length, `copied ${copied} bytes for a ${body.length}-byte body`);
    assert.equal(p.end(1).contentEvents, 1);
  });
});

describe('the cap, wherever the chunks split the stream', () => {
  const CAP = 64;
  /** An event of exactly `n` bytes before its blank line. */
  const sseEvent = (n: number) => `data: {"t":"${'x'.repeat(n - 14)}"}\n\n`;
  const usageEvent = 'data: {"choices":[],"usage":{"completion_tokens":3}}\n\n';
  const tooLong = `data: {"t":"an event\nwith newlines\n in it, ${'y'.repeat(CAP)}"}\n\n`;

  it('SSE: an event of CAP - 1 bytes is read, of CAP bytes or more is oversized, and the stream goes on, at every split', () => {
    const body = Buffer.from(sseEvent(CAP - 1) + sseEvent(CAP) + tooLong + sseEvent(20) + usageEvent + SSE_DONE);
    for (const chunks of everySplit(body)) {
      const p = new SseParser(NO_CAPTURE, CAP);
      chunks.forEach((c, i) => {
        p.push(c, i);
        assert.ok(p.heldBytes <= CAP, `held ${p.heldBytes} bytes`);
      });
      const s = p.end(chunks.length);
      const how = `split into ${chunks.map((c) => c.length).join('+')} bytes`;
      assert.equal(s.oversized, 2, how);
      assert.equal(s.contentEvents, 2, how);
      assert.equal(s.malformed, 0, how);
      assert.equal(s.outputTokens, 3, how);
      assert.equal(s.complete, true, how);
    }
  });

  it('SSE: a stream that ends inside an oversized event counts it once, at every split', () => {
    const body = Buffer.from(sseEvent(20) + tooLong.slice(0, -2));
    for (const chunks of everySplit(body)) {
      const p = new SseParser(NO_CAPTURE, CAP);
      chunks.forEach((c, i) => p.push(c, i));
      const s = p.end(chunks.length);
      assert.equal(s.oversized, 1);
      assert.equal(s.contentEvents, 1);
      assert.equal(s.complete, false);
    }
  });

  it('usage stripper: oversized events pass unchanged (even with a usage member) and the usage event is still removed, at every split', () => {
    const withMember = `data: {"choices":[{"text":"${'z'.repeat(CAP)}"}],"usage":{"prompt_tokens":0}}\n\n`;
    const small = 'data: {"choices":[{"text":"a"}],"usage":{"prompt_tokens":0}}\n\n';
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":7}}\n\n';
    const body = Buffer.from(small + withMember + tooLong + usage + SSE_DONE);
    const expected = Buffer.from('data: {"choices":[{"text":"a"}]}\n\n' + withMember + tooLong + SSE_DONE);
    for (const chunks of everySplit(body)) {
      const st = new SseUsageStripper(CAP);
      const out: Buffer[] = [];
      for (const c of chunks) {
        out.push(st.push(c));
        assert.ok(st.heldBytes <= CAP, `held ${st.heldBytes} bytes`);
      }
      out.push(st.end());
      assert.equal(Buffer.concat(out).toString(), expected.toString(), `split into ${chunks.map((c) => c.length).join('+')} bytes`);
    }
  });

  it('NDJSON: a line of CAP bytes is read, a longer one is oversized, and the stream goes on, at every split', () => {
    const line = (n: number) => `{"t":"${'x'.repeat(n - 8)}"}\n`;
    const body = Buffer.from(line(CAP) + line(CAP + 1) + line(10 * CAP) + line(20) + '{"done":true}\n');
    for (const chunks of everySplit(body)) {
      const p = new NdjsonParser(NO_CAPTURE, CAP);
      chunks.forEach((c, i) => {
        p.push(c, i);
        assert.ok(p.heldBytes <= CAP, `held ${p.heldBytes} bytes`);
      });
      const s = p.end(chunks.length);
      const how = `split into ${chunks.map((c) => c.length).join('+')} bytes`;
      assert.equal(s.oversized, 2, how);
      assert.equal(s.contentEvents, 2, how);
      assert.equal(s.malformed, 0, how);
      assert.equal(s.complete, true, how);
    }
  });
});
