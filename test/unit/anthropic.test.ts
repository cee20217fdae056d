/**
 * The Anthropic Messages parsers: Ollama's `/v1/messages` SSE stream (AnthropicSseParser) and its
 * non-streamed JSON answer (JsonBodyParser), against the recorded fixtures (fixtures README §8.2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AnthropicSseParser } from '../../src/protocol/anthropic';
import { JsonBodyParser } from '../../src/protocol/json';
import type { CallSummary } from '../../src/protocol/summary';
import { fixture } from '../helpers/fixtures';
import { everySplit, parseWhole, stable } from '../helpers/split';
import { bytesSearched } from '../helpers/stream-costs';

const TEXT =
  "The sky appears blue because molecules in Earth's atmosphere scatter shorter blue wavelengths of sunlight much more strongly than longer red ones — a process called Rayleigh scattering.";

/** The stream cut into its events (`\n\n` kept), as Ollama flushes them. */
function events(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let at = body.indexOf('\n\n'); at !== -1; at = body.indexOf('\n\n', start)) {
    out.push(body.subarray(start, at + 2));
    start = at + 2;
  }
  if (start < body.length) out.push(body.subarray(start));
  return out;
}

/** Feeds one event per push, the i-th at time i, so the content timestamps say which event they were. */
function parseByEvent(body: Buffer, parser = new AnthropicSseParser()): CallSummary {
  const evs = events(body);
  evs.forEach((e, i) => parser.push(e, i));
  return parser.end(evs.length);
}

/** Index of the first event whose bytes contain `needle`. */
function eventIndex(body: Buffer, needle: string): number {
  return events(body).findIndex((e) => e.includes(needle));
}

/** A fixture with one string replaced, which must occur exactly once. */
function edited(file: string, from: string, to: string): Buffer {
  const text = fixture(file).toString('utf8');
  assert.equal(text.split(from).length, 2, `${from} occurs once in ${file}`);
  return Buffer.from(text.replace(from, to));
}

describe('Anthropic Messages stream parser', () => {
  it('reads the text stream: the real usage from message_delta, stop reason, id and model', () => {
    const s = parseWhole(new AnthropicSseParser(), fixture('anthropic-messages-stream.sse'));
    // message_start says input_tokens 12 (Ollama's len/4 estimate); message_delta has the real 37.
    assert.equal(s.inputTokens, 37);
    assert.equal(s.outputTokens, 31);
    assert.deepEqual(s.finishReasons, ['end_turn']);
    assert.equal(s.responseModel, 'llama3.2');
    assert.equal(s.responseId, 'msg_9f160c915a2a7b8ddea77bbd');
    assert.equal(s.contentEvents, 30);
    assert.equal(s.thinkingEvents, 0);
    assert.equal(s.complete, true);
    assert.equal(s.errorMessage, undefined);
    assert.equal(s.malformed, 0);
    assert.equal(s.oversized, 0);
    assert.equal(s.inspected, true);
    assert.equal(s.outputText, undefined, 'no text is collected unless asked');
  });

  it('times the first and last content event, and the first answer event', () => {
    const body = fixture('anthropic-messages-stream.sse');
    const s = parseByEvent(body);
    const first = eventIndex(body, 'text_delta');
    assert.equal(first, 2, 'after message_start and content_block_start');
    assert.equal(s.firstContentAt, first);
    assert.equal(s.firstAnswerAt, first);
    assert.equal(s.lastContentAt, first + 29);
  });

  it('tells thinking deltas from answer deltas (qwen3:8b with thinking enabled)', () => {
    const body = fixture('anthropic-messages-thinking-stream.sse');
    const s = parseByEvent(body);
    assert.equal(s.contentEvents, 71);
    assert.equal(s.thinkingEvents, 59);
    assert.equal(s.inputTokens, 18, 'not the estimate 5 of message_start');
    assert.equal(s.outputTokens, 76);
    assert.deepEqual(s.finishReasons, ['end_turn']);
    assert.equal(s.responseModel, 'qwen3:8b');
    assert.equal(s.responseId, 'msg_be89a709a6e1c8ec3de34d74');
    assert.equal(s.complete, true);
    assert.equal(s.malformed, 0);
    // Content starts with the first thinking delta; the answer with the first text delta.
    assert.equal(s.firstContentAt, eventIndex(body, 'thinking_delta'));
    assert.equal(s.firstAnswerAt, eventIndex(body, 'text_delta'));
    assert.ok(s.firstAnswerAt! > s.firstContentAt! + 58);
  });

  it('reads the tool-call stream: one input_json_delta, stop reason tool_use', () => {
    const s = parseWhole(new AnthropicSseParser(), fixture('anthropic-messages-tools-stream.sse'));
    assert.equal(s.inputTokens, 186, 'not the estimate 50 of message_start');
    assert.equal(s.outputTokens, 19);
    assert.deepEqual(s.finishReasons, ['tool_use']);
    assert.equal(s.responseModel, 'llama3.2');
    assert.equal(s.responseId, 'msg_d4e065e019659bfa243f3dce');
    assert.equal(s.contentEvents, 1);
    assert.equal(s.thinkingEvents, 0);
    assert.equal(s.complete, true);
    assert.equal(s.malformed, 0);
  });

  it('reports a stream that broke off (no message_stop) as incomplete, without the estimated input tokens', () => {
    const s = parseWhole(new AnthropicSseParser(), fixture('error-anthropic-midstream.sse'));
    assert.equal(s.complete, false);
    assert.equal(s.contentEvents, 8);
    assert.equal(s.responseId, 'msg_1e193a5671f58da73602d97a');
    assert.equal(s.responseModel, 'llama3.2');
    // message_start's 12 is Ollama's len/4 estimate, not a count: nothing real is known.
    assert.equal(s.inputTokens, undefined);
    assert.equal(s.outputTokens, undefined);
    assert.equal(s.finishReasons, undefined);
    assert.equal(s.errorMessage, undefined, 'Ollama sends no error event');
    assert.equal(s.malformed, 0);
  });

  it('is complete only with message_stop', () => {
    const body = fixture('anthropic-messages-stream.sse');
    const cut = body.subarray(0, body.indexOf('event: message_stop'));
    const s = parseWhole(new AnthropicSseParser(), cut);
    assert.equal(s.complete, false);
    assert.equal(s.outputTokens, 31, 'message_delta was seen');
    assert.deepEqual(s.finishReasons, ['end_turn']);
  });

  it('decodes an event: error into errorMessage', () => {
    const start = events(fixture('anthropic-messages-stream.sse'))[0]!;
    const error = Buffer.from('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n');
    const s = parseWhole(new AnthropicSseParser(), Buffer.concat([start, error]));
    assert.equal(s.errorMessage, 'Overloaded');
    assert.equal(s.complete, false);
    assert.equal(s.malformed, 0);
  });

  it("takes message_start's input tokens when message_delta has none (Ollama before v0.15.5) and the stream completed", () => {
    const body = edited('anthropic-messages-tools-stream.sse', '"usage":{"input_tokens":186,"output_tokens":19}', '"usage":{"output_tokens":19}');
    const s = parseWhole(new AnthropicSseParser(), body);
    assert.equal(s.inputTokens, 50);
    assert.equal(s.outputTokens, 19);
    // Before v0.15.5 message_start said 0 unless the first chunk was also the last: then nothing is known.
    const zero = Buffer.from(body.toString('utf8').replace('"input_tokens":50', '"input_tokens":0'));
    assert.equal(parseWhole(new AnthropicSseParser(), zero).inputTokens, undefined);
  });

  it('collects the answer text, not the thinking, only when asked', () => {
    const opts = { captureText: true, maxTextChars: 10_000 };
    assert.equal(parseWhole(new AnthropicSseParser(opts), fixture('anthropic-messages-stream.sse')).outputText, TEXT);
    assert.equal(parseWhole(new AnthropicSseParser(opts), fixture('anthropic-messages-thinking-stream.sse')).outputText, '17 × 23 = **391**');
    assert.equal(
      parseWhole(new AnthropicSseParser({ captureText: true, maxTextChars: 10 }), fixture('anthropic-messages-stream.sse')).outputText,
      TEXT.slice(0, 11),
    );
  });

  it('counts a message_start or message_delta that is not JSON as malformed', () => {
    const body = Buffer.from('event: message_start\ndata: {"type":"message_start",}\n\nevent: message_delta\ndata: {nope}\n\n');
    assert.equal(parseWhole(new AnthropicSseParser(), body).malformed, 2);
  });

  for (const file of [
    'anthropic-messages-stream.sse',
    'anthropic-messages-thinking-stream.sse',
    'anthropic-messages-tools-stream.sse',
    'error-anthropic-midstream.sse',
  ]) {
    it(`gives the same result for ${file} split at every byte offset, and cut into 1-byte chunks`, () => {
      const body = fixture(file);
      const expected = stable(parseWhole(new AnthropicSseParser(), body));
      let splits = 0;
      for (const chunks of everySplit(body)) {
        const p = new AnthropicSseParser();
        chunks.forEach((c, i) => p.push(c, i));
        assert.deepEqual(stable(p.end(chunks.length)), expected);
        splits++;
      }
      assert.equal(splits, body.length + 1);
    });
  }
});

describe('Anthropic Messages stream parser cost', () => {
  it('searches a 64 KB chunk of text deltas a few times over, not once per event (bytes covered by indexOf)', () => {
    const delta = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" word"}}\n\n';
    const body = Buffer.from(delta.repeat(Math.floor((64 * 1024) / delta.length)));
    const p = new AnthropicSseParser();
    const searched = bytesSearched(() => p.push(body, 0));
    assert.ok(searched <= 4 * body.length, `searched ${searched} bytes of a ${body.length}-byte chunk`);
    const s = p.end(1);
    assert.equal(s.contentEvents, body.length / delta.length);
    assert.equal(s.thinkingEvents, 0);
  });
});

describe('Anthropic Messages non-streamed answer (JsonBodyParser)', () => {
  it('reads usage, stop reason, id and model, and the text when asked', () => {
    const body = fixture('anthropic-messages-nostream.json');
    const s = parseWhole(new JsonBodyParser(), body);
    assert.equal(s.inputTokens, 37);
    assert.equal(s.outputTokens, 31);
    assert.deepEqual(s.finishReasons, ['end_turn']);
    assert.equal(s.responseModel, 'llama3.2');
    assert.equal(s.responseId, 'msg_04a1e77d12cb5cf53f98e71b');
    assert.equal(s.complete, true);
    assert.equal(s.contentEvents, 0);
    assert.equal(s.malformed, 0);
    assert.equal(parseWhole(new JsonBodyParser({ captureText: true, maxTextChars: 10_000 }), body).outputText, TEXT);
  });

  it("reads the message of Ollama's Anthropic error body", () => {
    const s = parseWhole(new JsonBodyParser(), fixture('error-anthropic-model-not-found.json'));
    assert.equal(s.errorMessage, "model 'llama3.3' not found");
    assert.equal(parseWhole(new JsonBodyParser(), fixture('error-anthropic-bad-request.json')).errorMessage, 'max_tokens is required and must be positive');
  });
});
