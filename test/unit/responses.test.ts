/**
 * The OpenAI Responses parser (`POST /v1/responses`) on Ollama's recorded streams (fixtures README
 * §8.3): usage only from `response.completed`, reasoning deltas counted as thinking, a stream is
 * complete only with `response.completed`, and `response.failed` is an error — whatever the chunking.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonBodyParser } from '../../src/protocol/json';
import { ResponsesSseParser } from '../../src/protocol/responses';
import { emptySummary, type CallSummary } from '../../src/protocol/summary';
import { fixture } from '../helpers/fixtures';
import { everySplit, parseWhole, stable } from '../helpers/split';

const TEXT =
  "The sky appears blue because molecules in Earth's atmosphere scatter shorter blue wavelengths of sunlight much more strongly than longer red ones — a process called Rayleigh scattering.";

/** What each fixture must yield, whole or in any chunking (the timing fields aside). */
const EXPECTED: Record<string, ReturnType<typeof stable>> = {
  'openai-responses-stream.sse': {
    ...emptySummary(),
    responseModel: 'llama3.2',
    responseId: 'resp_52284',
    inputTokens: 37,
    outputTokens: 31,
    contentEvents: 30,
    thinkingEvents: 0,
    complete: true,
  },
  'openai-responses-reasoning-stream.sse': {
    ...emptySummary(),
    responseModel: 'qwen3:8b',
    responseId: 'resp_591490',
    inputTokens: 18,
    outputTokens: 76,
    // 59 response.reasoning_summary_text.delta, then 12 response.output_text.delta.
    contentEvents: 71,
    thinkingEvents: 59,
    complete: true,
  },
  'error-openai-responses-failed.sse': {
    ...emptySummary(),
    responseModel: 'llama3.3',
    responseId: 'resp_40859',
    // response.failed carries a zeroed usage for a call that never ran: not a count.
    contentEvents: 0,
    thinkingEvents: 0,
    complete: false,
    errorMessage: "model 'llama3.3' not found",
  },
  'error-openai-responses-midstream.sse': {
    ...emptySummary(),
    responseModel: 'llama3.2',
    responseId: 'resp_6940',
    contentEvents: 8,
    thinkingEvents: 0,
    complete: false,
  },
};

/** The events of a fixture of type `type`, counted from its bytes. */
function eventsOf(file: string, type: string): number {
  return fixture(file)
    .toString('utf8')
    .split('\n\n')
    .filter((e) => e.startsWith(`event: ${type}\n`)).length;
}

function parse(body: Buffer | string, options?: ConstructorParameters<typeof ResponsesSseParser>[0]): CallSummary {
  return parseWhole(new ResponsesSseParser(options), typeof body === 'string' ? Buffer.from(body) : body);
}

describe('Responses SSE parser (POST /v1/responses)', () => {
  it('counts the fixtures’ deltas as the fixtures have them', () => {
    // The expected counts above, checked against the bytes rather than taken on trust.
    const text = 'response.output_text.delta';
    const reasoning = 'response.reasoning_summary_text.delta';
    assert.equal(eventsOf('openai-responses-stream.sse', text), 30);
    assert.equal(eventsOf('openai-responses-stream.sse', reasoning), 0);
    assert.equal(eventsOf('openai-responses-reasoning-stream.sse', reasoning), 59);
    assert.equal(eventsOf('openai-responses-reasoning-stream.sse', text), 12);
    assert.equal(eventsOf('error-openai-responses-midstream.sse', text), 8);
    assert.equal(eventsOf('error-openai-responses-failed.sse', text), 0);
  });

  for (const [file, expected] of Object.entries(EXPECTED)) {
    it(`reads ${file} exactly`, () => {
      assert.deepEqual(stable(parse(fixture(file))), expected);
    });

    it(`gives the same result for ${file} split at every byte offset, and cut into 1-byte chunks`, () => {
      const body = fixture(file);
      for (const chunks of everySplit(body)) {
        const p = new ResponsesSseParser();
        chunks.forEach((c, i) => p.push(c, i));
        assert.deepEqual(stable(p.end(chunks.length)), expected, `${chunks.length} chunks, first ${chunks[0].length} bytes`);
      }
    });
  }

  it('takes the token counts from response.completed only', () => {
    const body = fixture('openai-responses-stream.sse');
    const completed = body.indexOf('event: response.completed\n');
    const before = parse(body.subarray(0, completed));
    assert.equal(before.inputTokens, undefined);
    assert.equal(before.outputTokens, undefined);
    assert.equal(before.complete, false);
    const after = parse(body);
    assert.equal(after.inputTokens, 37);
    assert.equal(after.outputTokens, 31);
  });

  it('times the first and last delta, and the first answer delta after the thinking', () => {
    const body = fixture('openai-responses-reasoning-stream.sse');
    const events = body
      .toString('utf8')
      .split('\n\n')
      .filter((e) => e !== '')
      .map((e) => Buffer.from(e + '\n\n'));
    const p = new ResponsesSseParser();
    // Event i arrives at time 100 + i.
    events.forEach((e, i) => p.push(e, 100 + i));
    const s = p.end(1000);
    assert.equal(s.firstContentAt, 103, 'the first reasoning delta is sequence_number 3');
    assert.equal(s.firstAnswerAt, 166, 'the first output_text delta is sequence_number 66');
    assert.equal(s.lastContentAt, 177, 'the last output_text delta is sequence_number 77');
  });

  it('collects the answer text (not the reasoning) when asked to capture it', () => {
    const opts = { captureText: true, maxTextChars: 10_000 };
    assert.equal(parse(fixture('openai-responses-stream.sse'), opts).outputText, TEXT);
    assert.equal(parse(fixture('openai-responses-reasoning-stream.sse'), opts).outputText, '17 × 23 = **391**');
    assert.equal(parse(fixture('openai-responses-stream.sse'), { captureText: true, maxTextChars: 7 }).outputText, 'The sky ');
    assert.equal(parse(fixture('openai-responses-stream.sse')).outputText, undefined, 'nothing collected by default');
  });

  it('counts a function-call arguments delta as content', () => {
    const s = parse(
      'event: response.function_call_arguments.delta\ndata: {"delta":"{\\"city\\":\\"Tokyo\\"}","item_id":"fc_1_0","output_index":0,"sequence_number":3,"type":"response.function_call_arguments.delta"}\n\n',
    );
    assert.equal(s.contentEvents, 1);
    assert.equal(s.thinkingEvents, 0);
    assert.equal(s.complete, false);
  });

  it('reports an error event (OpenAI sends them; Ollama does not)', () => {
    const flat = parse('event: error\ndata: {"code":"server_error","message":"boom","param":null,"sequence_number":4,"type":"error"}\n\n');
    assert.equal(flat.errorMessage, 'boom');
    assert.equal(flat.complete, false);
    const nested = parse('event: error\ndata: {"error":{"message":"nested boom","type":"api_error"},"type":"error"}\n\n');
    assert.equal(nested.errorMessage, 'nested boom');
    assert.equal(parse('event: error\ndata: {"oops":\n\n').malformed, 1);
  });

  it('counts an event whose response object is missing as malformed', () => {
    const s = parse('event: response.completed\ndata: {"response":null,"type":"response.completed"}\n\n');
    assert.equal(s.malformed, 1);
  });

  it('decodes an unterminated last event at the end of the stream', () => {
    const body = fixture('openai-responses-stream.sse');
    const s = parse(body.subarray(0, body.length - 2));
    assert.equal(s.complete, true);
    assert.equal(s.outputTokens, 31);
  });

  it('reports the response.failed error message, not a made-up one', () => {
    const s = parse(fixture('error-openai-responses-failed.sse'));
    assert.equal(s.errorMessage, "model 'llama3.3' not found");
    const bare = parse('event: response.failed\ndata: {"response":{"id":"resp_1","status":"failed"},"type":"response.failed"}\n\n');
    assert.equal(bare.errorMessage, 'response failed');
    assert.equal(bare.complete, false);
  });
});

describe('Responses non-streamed body (JSON)', () => {
  it('reads tokens, id and model from openai-responses-nostream.json', () => {
    const s = parseWhole(new JsonBodyParser(), fixture('openai-responses-nostream.json'));
    assert.deepEqual(stable(s), {
      ...emptySummary(),
      responseModel: 'llama3.2',
      responseId: 'resp_260228',
      inputTokens: 37,
      outputTokens: 31,
      complete: true,
    });
  });

  it('collects the output text of the non-streamed body when asked', () => {
    const s = parseWhole(new JsonBodyParser({ captureText: true, maxTextChars: 10_000 }), fixture('openai-responses-nostream.json'));
    assert.equal(s.outputText, TEXT);
  });

  it('gives the same result at every split', () => {
    const body = fixture('openai-responses-nostream.json');
    const expected = stable(parseWhole(new JsonBodyParser(), body));
    for (const chunks of everySplit(body)) {
      const p = new JsonBodyParser();
      chunks.forEach((c) => p.push(c));
      assert.deepEqual(stable(p.end()), expected);
    }
  });

  it("reads Ollama's model-not-found error body", () => {
    const s = parseWhole(new JsonBodyParser(), fixture('error-openai-responses-model-not-found.json'));
    assert.equal(s.errorMessage, "model 'llama3.3' not found");
    assert.equal(s.inputTokens, undefined);
  });
});
