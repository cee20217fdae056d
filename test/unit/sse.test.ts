import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseParser } from '../../src/protocol/sse';
import { SseUsageStripper } from '../../src/protocol/sse-usage';
import { completionsStream, withoutUsageEvent } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { everySplit, parseWhole, stable, randomChunks } from '../helpers/split';

function strip(chunks: Buffer[]): Buffer {
  const st = new SseUsageStripper();
  const out = chunks.map((c) => st.push(c));
  out.push(st.end());
  return Buffer.concat(out);
}

describe('SSE parser (OpenAI-compatible streams)', () => {
  it('reads usage, finish reason and id from a chat stream with include_usage', () => {
    const s = parseWhole(new SseParser(), fixture('openai-chat-stream.sse'));
    assert.equal(s.complete, true);
    assert.equal(s.malformed, 0);
    assert.equal(s.inputTokens, 30);
    assert.equal(s.outputTokens, 6);
    assert.deepEqual(s.finishReasons, ['stop']);
    assert.equal(s.responseId, 'chatcmpl-607');
    assert.equal(s.responseModel, 'llama3.2');
    assert.equal(s.contentEvents, 5);
  });

  it('reads the legacy format (finish reason on a content chunk)', () => {
    const s = parseWhole(new SseParser(), fixture('openai-chat-stream-legacy.sse'));
    assert.equal(s.complete, true);
    assert.equal(s.outputTokens, 6);
    assert.deepEqual(s.finishReasons, ['stop']);
  });

  it('has no token counts for a stream without usage, but is complete', () => {
    const s = parseWhole(new SseParser(), fixture('openai-chat-stream-nousage.sse'));
    assert.equal(s.complete, true);
    assert.equal(s.outputTokens, undefined);
  });

  it('reports a stream that ends without [DONE] as incomplete', () => {
    const body = fixture('openai-chat-stream.sse');
    const s = parseWhole(new SseParser(), body.subarray(0, body.indexOf('data: [DONE]')));
    assert.equal(s.complete, false);
  });

  it('reads the real counts of a /v1/completions stream, not the zeroed per-chunk usage', () => {
    const s = parseWhole(new SseParser(), completionsStream(true));
    assert.equal(s.inputTokens, 12);
    assert.equal(s.outputTokens, 5);
    assert.equal(s.complete, true);
  });

  it('reports an error event', () => {
    const body = Buffer.from('data: {"error":{"message":"boom","type":"api_error","param":null,"code":null}}\n\n');
    const s = parseWhole(new SseParser(), body);
    assert.equal(s.errorMessage, 'boom');
  });

  for (const file of ['openai-chat-stream.sse', 'openai-chat-stream-nousage.sse', 'openai-chat-stream-legacy.sse']) {
    it(`gives the same result for ${file} split at every byte offset, and cut into 1-byte chunks`, () => {
      const body = fixture(file);
      const expected = stable(parseWhole(new SseParser(), body));
      for (const chunks of everySplit(body)) {
        const p = new SseParser();
        chunks.forEach((c, i) => p.push(c, i));
        assert.deepEqual(stable(p.end(chunks.length)), expected);
      }
    });
  }
});

describe('SSE usage stripper', () => {
  it('turns the include_usage chat stream into exactly the stream without it, at every split', () => {
    const full = fixture('openai-chat-stream.sse');
    const expected = withoutUsageEvent(full);
    for (const chunks of everySplit(full)) assert.deepEqual(strip(chunks), expected);
  });

  it('removes the zeroed usage members and the usage event of a /v1/completions stream', () => {
    const expected = completionsStream(false);
    const full = completionsStream(true);
    for (let seed = 1; seed <= 200; seed++) assert.deepEqual(strip(randomChunks(full, seed, 40)), expected);
  });

  it('forwards a chunk holding only complete content events as the same buffer', () => {
    const full = fixture('openai-chat-stream.sse');
    const first = full.subarray(0, full.indexOf('\n\n') + 2);
    const st = new SseUsageStripper();
    assert.deepEqual(st.push(first), first);
  });

  it('passes an unterminated tail through unchanged at the end', () => {
    const st = new SseUsageStripper();
    const out = Buffer.concat([st.push(Buffer.from('data: {"a":1}\n\ndata: {"b"')), st.end()]);
    assert.equal(out.toString(), 'data: {"a":1}\n\ndata: {"b"');
  });
});
