import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NdjsonParser } from '../../src/protocol/ndjson';
import { fixture } from '../helpers/fixtures';
import { everySplit, parseWhole, stable } from '../helpers/split';

const STREAMS = ['chat-stream.ndjson', 'generate-stream.ndjson', 'generate-length.ndjson', 'chat-thinking-stream.ndjson', 'error-midstream.ndjson'];

describe('NDJSON parser (native Ollama streams)', () => {
  it('reads the final statistics of a chat stream', () => {
    const s = parseWhole(new NdjsonParser(), fixture('chat-stream.ndjson'));
    assert.equal(s.complete, true);
    assert.equal(s.malformed, 0);
    assert.equal(s.errorMessage, undefined);
    assert.equal(s.responseModel, 'llama3.2');
    assert.deepEqual(s.finishReasons, ['stop']);
    assert.equal(s.inputTokens, 37);
    assert.equal(s.outputTokens, 31);
    assert.equal(s.totalDurationNs, 486273703);
    assert.equal(s.loadDurationNs, 23605102);
    assert.equal(s.promptEvalDurationNs, 31290000);
    assert.equal(s.evalDurationNs, 428816000);
    assert.equal(s.contentEvents, 30);
  });

  it('counts thinking lines as content and reads a cold load', () => {
    const s = parseWhole(new NdjsonParser(), fixture('chat-thinking-stream.ndjson'));
    assert.equal(s.complete, true);
    assert.equal(s.contentEvents, 71);
    assert.equal(s.outputTokens, 76);
    assert.equal(s.loadDurationNs, 3104221583);
  });

  it('tells thinking lines from answer lines, and when the answer began', () => {
    const body = fixture('chat-thinking-stream.ndjson');
    const lines = body.toString('utf8').trim().split('\n');
    const thinkingLines = lines.filter((l) => l.includes('"content":"","thinking":')).length;
    const firstAnswer = lines.findIndex((l) => !l.includes('"thinking":') && !l.includes('"done":true'));
    const p = new NdjsonParser();
    lines.forEach((l, i) => p.push(Buffer.from(l + '\n'), 100 + i));
    const s = p.end(1000);
    assert.equal(thinkingLines, 59);
    assert.equal(s.thinkingEvents, thinkingLines);
    assert.equal(s.firstContentAt, 100);
    assert.equal(s.firstAnswerAt, 100 + firstAnswer);
    const plain = parseWhole(new NdjsonParser(), fixture('chat-stream.ndjson'));
    assert.equal(plain.thinkingEvents, 0);
    assert.equal(plain.firstAnswerAt, plain.firstContentAt);
  });

  it('reports an error line inside a 200 stream and no completion', () => {
    const s = parseWhole(new NdjsonParser(), fixture('error-midstream.ndjson'));
    assert.equal(s.complete, false);
    assert.equal(s.errorMessage, 'an error was encountered while running the model: unexpected EOF');
    assert.equal(s.contentEvents, 8);
  });

  it('takes the last line even without a final newline', () => {
    const body = fixture('generate-stream.ndjson');
    const s = parseWhole(new NdjsonParser(), body.subarray(0, body.length - 1));
    assert.equal(s.complete, true);
    assert.equal(s.outputTokens, parseWhole(new NdjsonParser(), body).outputTokens);
  });

  it('reports a truncated stream as incomplete', () => {
    const body = fixture('chat-stream.ndjson');
    const cutAt = body.lastIndexOf('\n', body.length - 2) + 1;
    const s = parseWhole(new NdjsonParser(), body.subarray(0, cutAt));
    assert.equal(s.complete, false);
    assert.equal(s.inputTokens, undefined);
  });

  it('counts a line that is not JSON as malformed and carries on', () => {
    const good = fixture('chat-stream.ndjson');
    const firstNl = good.indexOf('\n') + 1;
    const body = Buffer.concat([good.subarray(0, firstNl), Buffer.from('<html>502 Bad Gateway</html>\n'), good.subarray(firstNl)]);
    const s = parseWhole(new NdjsonParser(), body);
    assert.equal(s.malformed, 1);
    assert.equal(s.complete, true);
    assert.equal(s.outputTokens, 31);
  });

  it('does not take a "done":true inside tool-call arguments for the end of the stream', () => {
    const line =
      '{"model":"llama3.2","created_at":"2026-11-25T19:20:14Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"finish","arguments":{"done":true}}}]},"done":false}\n';
    const s = parseWhole(new NdjsonParser(), Buffer.from(line));
    assert.equal(s.complete, false);
    assert.equal(s.contentEvents, 1);
  });

  it('counts a line shorter than an error prefix, at the end of a chunk, as content without throwing', () => {
    const p = new NdjsonParser();
    p.push(Buffer.from('{}\n'), 0);
    const s = p.end(1);
    assert.equal(s.contentEvents, 1);
    assert.equal(s.malformed, 0);
  });

  for (const file of STREAMS) {
    it(`gives the same result for ${file} split at every byte offset, and cut into 1-byte chunks`, () => {
      const body = fixture(file);
      const expected = stable(parseWhole(new NdjsonParser(), body));
      for (const chunks of everySplit(body)) {
        const p = new NdjsonParser();
        chunks.forEach((c, i) => p.push(c, i));
        assert.deepEqual(stable(p.end(chunks.length)), expected, `split into ${chunks.map((c) => c.length).join('+')} bytes`);
      }
    });
  }

  it('marks first and last content time from the chunks that carried content', () => {
    const body = fixture('generate-stream.ndjson');
    const lines = body.toString('utf8').split(/(?<=\n)/);
    const p = new NdjsonParser();
    lines.forEach((l, i) => p.push(Buffer.from(l), 100 + i));
    const s = p.end(999);
    assert.equal(s.firstContentAt, 100);
    assert.equal(s.lastContentAt, 100 + lines.length - 2);
  });
});
