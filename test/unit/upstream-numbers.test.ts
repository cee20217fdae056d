/**
 * Numbers from Ollama's answers are bounded: counts are integers in 0…2^31−1, durations integer
 * nanoseconds in 0…7 days. A value outside (a fraction, a negative, `1e308`, a string) is recorded
 * nowhere, and the answer counts as malformed. Every API family, streamed and not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parserFor, type CallSummary } from '../../src/protocol';
import { MAX_DURATION_NS, MAX_TOKEN_COUNT } from '../../src/protocol/summary';
import type { EventFormat } from '../../src/routes';
import { fixture } from '../helpers/fixtures';

/** What the fixture `file` gives once `from` (one field's value, exactly as written) is replaced by `to`. */
function parsed(file: string, framing: 'ndjson' | 'sse' | 'json', events: EventFormat, from: string, to: string): CallSummary {
  const text = fixture(file).toString('utf8');
  assert.ok(text.includes(from), `${file} holds ${from}`);
  const p = parserFor(framing, events);
  p.push(Buffer.from(text.split(from).join(to)), 0);
  return p.end(1);
}

const HOSTILE = ['1e308', '1.5', '-1', '"31"', 'true', '{}', String(2 ** 53)];

interface Case {
  family: string;
  file: string;
  framing: 'ndjson' | 'sse' | 'json';
  events: EventFormat;
  /** The field as the fixture writes it, and where it lands. */
  field: string;
  value: number;
  key: keyof CallSummary;
}

const COUNTS: Case[] = [
  { family: 'native stream', file: 'chat-stream.ndjson', framing: 'ndjson', events: 'ollama', field: '"eval_count":', value: 31, key: 'outputTokens' },
  { family: 'native body', file: 'chat-nostream.json', framing: 'json', events: 'ollama', field: '"prompt_eval_count":', value: 37, key: 'inputTokens' },
  {
    family: 'OpenAI chat stream',
    file: 'openai-chat-stream.sse',
    framing: 'sse',
    events: 'openai',
    field: '"completion_tokens":',
    value: 6,
    key: 'outputTokens',
  },
  {
    family: 'OpenAI chat body',
    file: 'openai-chat-nostream.json',
    framing: 'json',
    events: 'openai',
    field: '"prompt_tokens":',
    value: 30,
    key: 'inputTokens',
  },
  {
    family: 'Responses stream',
    file: 'openai-responses-stream.sse',
    framing: 'sse',
    events: 'responses',
    field: '"output_tokens":',
    value: 31,
    key: 'outputTokens',
  },
  {
    family: 'Responses body',
    file: 'openai-responses-nostream.json',
    framing: 'json',
    events: 'responses',
    field: '"input_tokens":',
    value: 37,
    key: 'inputTokens',
  },
  {
    family: 'Anthropic stream',
    file: 'anthropic-messages-stream.sse',
    framing: 'sse',
    events: 'anthropic',
    field: '"output_tokens":',
    value: 31,
    key: 'outputTokens',
  },
  {
    family: 'Anthropic body',
    file: 'anthropic-messages-nostream.json',
    framing: 'json',
    events: 'anthropic',
    field: '"input_tokens":',
    value: 37,
    key: 'inputTokens',
  },
];

describe('token counts from Ollama are integers in 0…2^31−1', () => {
  for (const c of COUNTS) {
    it(`${c.family}: ${c.field.slice(1, -2)} as written is taken, at the bound too`, () => {
      const as = parsed(c.file, c.framing, c.events, `${c.field}${c.value}`, `${c.field}${c.value}`);
      assert.equal(as[c.key], c.value);
      assert.equal(as.malformed, 0);
      const max = parsed(c.file, c.framing, c.events, `${c.field}${c.value}`, `${c.field}${MAX_TOKEN_COUNT}`);
      assert.equal(max[c.key], MAX_TOKEN_COUNT);
      assert.equal(max.malformed, 0);
    });
    it(`${c.family}: ${c.field.slice(1, -2)} out of range is recorded nowhere and counted as malformed`, () => {
      for (const bad of [...HOSTILE, String(MAX_TOKEN_COUNT + 1)]) {
        const s = parsed(c.file, c.framing, c.events, `${c.field}${c.value}`, `${c.field}${bad}`);
        assert.equal(s[c.key], undefined, bad);
        assert.ok(s.malformed > 0, `${bad} counted as malformed`);
      }
    });
  }

  it('a malformed usage does not leave an earlier chunk’s zeroed usage as the count (/v1/completions)', () => {
    const zero =
      'data: {"id":"cmpl-1","choices":[{"text":"a","index":0,"finish_reason":null}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}\n\n';
    const last = 'data: {"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":1e308,"completion_tokens":-3,"total_tokens":0}}\n\ndata: [DONE]\n\n';
    const p = parserFor('sse', 'openai');
    p.push(Buffer.from(zero + last), 0);
    const s = p.end(1);
    assert.equal(s.inputTokens, undefined);
    assert.equal(s.outputTokens, undefined);
    assert.equal(s.malformed, 1, 'one malformed answer, however many bad fields');
  });

  it('Anthropic: a hostile input-token estimate in message_start is not used', () => {
    // Older Ollama: message_delta without input_tokens, so message_start's count would be used.
    const from = '"usage":{"input_tokens":37,"output_tokens":31}';
    const s = parsed('anthropic-messages-stream.sse', 'sse', 'anthropic', from, '"usage":{"output_tokens":31}');
    assert.equal(s.inputTokens, 12, 'the estimate of a well-formed message_start');
    const text = fixture('anthropic-messages-stream.sse')
      .toString('utf8')
      .replace(from, '"usage":{"output_tokens":31}')
      .replace('"input_tokens":12', '"input_tokens":1e308');
    const p = parserFor('sse', 'anthropic');
    p.push(Buffer.from(text), 0);
    const h = p.end(1);
    assert.equal(h.inputTokens, undefined);
    assert.ok(h.malformed > 0);
  });
});

describe('durations from Ollama are integer nanoseconds in 0…7 days', () => {
  const DURATIONS: [string, number, keyof CallSummary][] = [
    ['"total_duration":', 486273703, 'totalDurationNs'],
    ['"eval_duration":', 428816000, 'evalDurationNs'],
  ];
  for (const [field, value, key] of DURATIONS) {
    it(`native stream: ${field.slice(1, -2)} as written is taken, at the bound too`, () => {
      assert.equal(parsed('chat-stream.ndjson', 'ndjson', 'ollama', `${field}${value}`, `${field}${value}`)[key], value);
      const max = parsed('chat-stream.ndjson', 'ndjson', 'ollama', `${field}${value}`, `${field}${MAX_DURATION_NS}`);
      assert.equal(max[key], MAX_DURATION_NS);
      assert.equal(max.malformed, 0);
    });
    it(`native stream: ${field.slice(1, -2)} out of range is recorded nowhere and counted as malformed`, () => {
      for (const bad of ['1e308', '1.5', '-1', '"5"', String(MAX_DURATION_NS + 1)]) {
        const s = parsed('chat-stream.ndjson', 'ndjson', 'ollama', `${field}${value}`, `${field}${bad}`);
        assert.equal(s[key], undefined, bad);
        assert.equal(s.malformed, 1, bad);
        // The rest of the answer is still read.
        assert.equal(s.outputTokens, 31);
      }
    });
  }

  it('native body: a negative eval_duration is recorded nowhere', () => {
    const s = parsed('chat-nostream.json', 'json', 'ollama', '"eval_duration":423625000', '"eval_duration":-423625000');
    assert.equal(s.evalDurationNs, undefined);
    assert.equal(s.malformed, 1);
  });

  it('null stands for an absent field, not a malformed one', () => {
    const s = parsed('chat-stream.ndjson', 'ndjson', 'ollama', '"eval_duration":428816000', '"eval_duration":null');
    assert.equal(s.evalDurationNs, undefined);
    assert.equal(s.malformed, 0);
  });
});
