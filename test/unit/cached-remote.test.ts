/**
 * Cached prompt tokens and remote models in every API family's parser (fixtures README §10.1,
 * §10.2): the streams whole and split at every offset, the same answers not streamed, an older
 * Ollama without the field, and the usage stripper on a usage object that is no longer flat.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AnthropicSseParser } from '../../src/protocol/anthropic';
import { JsonBodyParser } from '../../src/protocol/json';
import { NdjsonParser } from '../../src/protocol/ndjson';
import { ResponsesSseParser } from '../../src/protocol/responses';
import { SseParser } from '../../src/protocol/sse';
import { SseUsageStripper } from '../../src/protocol/sse-usage';
import { MAX_REMOTE_CHARS, type ResponseParser } from '../../src/protocol/summary';
import { cachedTokensOf, evaluatedPromptTokens, prefillTokensPerSecond } from '../../otel/call';
import { isRemoteModel } from '../../otel/state';
import { parseTags } from '../../src/poller';
import { completionsStream } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { everySplit, parseWhole, randomChunks, stable } from '../helpers/split';

interface Case {
  file: string;
  parser: () => ResponseParser;
  input: number;
  cached: number;
  output: number;
}

const STREAMS: Case[] = [
  { file: 'chat-stream-cached.ndjson', parser: () => new NdjsonParser(), input: 1203, cached: 1184, output: 31 },
  { file: 'openai-chat-stream-cached.sse', parser: () => new SseParser(), input: 1196, cached: 1184, output: 6 },
  { file: 'openai-responses-stream-cached.sse', parser: () => new ResponsesSseParser(), input: 1203, cached: 1184, output: 31 },
  // Anthropic's input_tokens (19) excludes the cache reads (1184): the whole prompt is their sum.
  { file: 'anthropic-messages-stream-cached.sse', parser: () => new AnthropicSseParser(), input: 1203, cached: 1184, output: 31 },
];

/** The last line or event of a stream, decoded: the final statistics or usage. */
function lastJson(file: string, needle: string): Record<string, unknown> {
  const text = fixture(file).toString('utf8');
  const line = text
    .split('\n')
    .reverse()
    .find((l) => l.includes(needle));
  assert.ok(line, `${needle} in ${file}`);
  return JSON.parse(line.replace(/^data: /, '')) as Record<string, unknown>;
}

describe('cached prompt tokens', () => {
  for (const c of STREAMS) {
    it(`${c.file}: the whole prompt, its cached part and the output, under any chunking`, () => {
      const whole = parseWhole(c.parser(), fixture(c.file));
      assert.equal(whole.inputTokens, c.input);
      assert.equal(whole.cachedTokens, c.cached);
      assert.equal(whole.outputTokens, c.output);
      assert.equal(whole.complete, true);
      assert.equal(whole.malformed, 0);
      const expected = stable(whole);
      for (const chunks of everySplit(fixture(c.file))) {
        const p = c.parser();
        chunks.forEach((chunk, i) => p.push(chunk, i));
        assert.deepEqual(stable(p.end(chunks.length)), expected, `split into ${chunks.map((b) => b.length).join('+')} bytes`);
      }
    });
  }

  it('reads the same fields in the answers that are not streamed, in each family', () => {
    const native = { ...lastJson('chat-stream-cached.ndjson', '"done":true'), message: { role: 'assistant', content: 'x' } };
    const openai = {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      choices: [{ index: 0, finish_reason: 'stop' }],
      ...pick(lastJson('openai-chat-stream-cached.sse', '"usage"'), 'usage'),
    };
    const responses = (lastJson('openai-responses-stream-cached.sse', 'response.completed') as { response: Record<string, unknown> }).response;
    const anthropic = {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'llama3.2',
      content: [],
      stop_reason: 'end_turn',
      usage: { input_tokens: 19, cache_read_input_tokens: 1184, output_tokens: 31 },
    };
    const got = [native, openai, responses, anthropic].map((body) => {
      const s = parseWhole(new JsonBodyParser(), Buffer.from(JSON.stringify(body)));
      return [s.inputTokens, s.cachedTokens];
    });
    assert.deepEqual(got, [
      [1203, 1184],
      [1196, 1184],
      [1203, 1184],
      [1203, 1184],
    ]);
  });

  it('an answer without the field (older Ollama) has no cached count, and its input is unchanged', () => {
    for (const [file, parser, input] of [
      ['chat-stream.ndjson', () => new NdjsonParser(), 37],
      ['openai-chat-stream.sse', () => new SseParser(), 30],
      ['anthropic-messages-stream.sse', () => new AnthropicSseParser(), 37],
      // Before it counted them, Ollama's Responses answer always said cached_tokens 0.
      ['openai-responses-stream.sse', () => new ResponsesSseParser(), 37],
    ] as const) {
      const s = parseWhole(parser(), fixture(file));
      assert.equal(s.cachedTokens, undefined, file);
      assert.equal(s.inputTokens, input, file);
    }
  });

  it('a reported 0 is kept (the series exists), and a zeroed usage never overwrites a count', () => {
    const zero = Buffer.from(fixture('chat-stream-cached.ndjson').toString('utf8').replace('"prompt_eval_cached_count":1184', '"prompt_eval_cached_count":0'));
    assert.equal(parseWhole(new NdjsonParser(), zero).cachedTokens, 0);
    const p = new SseParser();
    p.push(
      Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":5}}}\n\n'),
      0,
    );
    p.push(
      Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}\n\n'),
      1,
    );
    assert.equal(p.end(2).cachedTokens, 5);
  });

  it('the prefill rate counts only the evaluated tokens, and a cached count past the prompt is cut to it', () => {
    // Ollama's own example (PR #17943): 21 tokens, 16 cached, 56.452 ms → 88.57 tokens/s.
    const s = { inputTokens: 21, cachedTokens: 16, promptEvalDurationNs: 56_452_000 };
    assert.equal(evaluatedPromptTokens(s), 5);
    assert.equal(prefillTokensPerSecond(s)?.toFixed(2), '88.57');
    assert.equal(prefillTokensPerSecond({ inputTokens: 21, promptEvalDurationNs: 56_452_000 })?.toFixed(2), '372.00');
    assert.equal(cachedTokensOf({ inputTokens: 10, cachedTokens: 1e9 }), 10);
    assert.equal(evaluatedPromptTokens({ inputTokens: 10, cachedTokens: 1e9 }), 0);
  });
});

describe('remote (cloud) models', () => {
  it('reads remote_host and remote_model from the final line, under any chunking', () => {
    const body = fixture('chat-remote-stream.ndjson');
    const whole = parseWhole(new NdjsonParser(), body);
    assert.equal(whole.remoteHost, 'https://ollama.com:443');
    assert.equal(whole.remoteModel, 'gpt-oss:120b');
    assert.equal(whole.loadDurationNs, undefined);
    assert.equal(whole.inputTokens, 82);
    const expected = stable(whole);
    for (let seed = 1; seed <= 300; seed++) {
      const p = new NdjsonParser();
      randomChunks(body, seed, 97).forEach((c, i) => p.push(c, i));
      assert.deepEqual(stable(p.end(0)), expected);
    }
  });

  it('cuts a remote host an upstream made long, and ignores one that is not a string', () => {
    const long = `{"model":"m","remote_host":"${'h'.repeat(100_000)}","remote_model":7,"done":true,"eval_count":1}\n`;
    const s = parseWhole(new NdjsonParser(), Buffer.from(long));
    assert.equal(s.remoteHost?.length, MAX_REMOTE_CHARS);
    assert.equal(s.remoteModel, undefined);
  });

  it('knows a remote model by its cloud name or the last /api/tags, and a local one as local', () => {
    const tags = parseTags({
      models: [
        { name: 'llama3.2:latest', model: 'llama3.2:latest', size: 2 },
        { name: 'mine:latest', model: 'mine:latest', size: 400, remote_model: 'big', remote_host: 'http://10.0.0.9:11434' },
      ],
    });
    assert.deepEqual(tags.remote, ['mine:latest']);
    const state = { backends: { a: { up: true, models: tags.names, remoteModels: tags.remote } } };
    assert.equal(isRemoteModel(state, 'mine:latest'), true);
    assert.equal(isRemoteModel(state, 'llama3.2:latest'), false);
    assert.equal(isRemoteModel(undefined, 'gpt-oss:120b-cloud'), true);
    assert.equal(isRemoteModel(undefined, 'kimi-k2:cloud'), true);
    assert.equal(isRemoteModel(undefined, 'cloud:latest'), false);
    assert.equal(isRemoteModel({ backends: { a: { up: false, remoteModels: ['mine:latest'] } } }, 'mine:latest'), false, 'a failed poll says nothing');
  });
});

describe('usage stripper with a nested usage object', () => {
  it('removes a zeroed usage member that carries prompt_tokens_details, leaving valid events', () => {
    const nested = (b: Buffer) =>
      Buffer.from(b.toString('utf8').replaceAll('"total_tokens":0}', '"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}'));
    const full = nested(completionsStream(true));
    assert.notDeepEqual(full, completionsStream(true), 'the test stream carries the nested member');
    const expected = completionsStream(false);
    for (let seed = 1; seed <= 200; seed++) {
      const st = new SseUsageStripper();
      const out = Buffer.concat([...randomChunks(full, seed, 40).map((c) => st.push(c)), st.end()]);
      assert.deepEqual(out.toString('utf8'), expected.toString('utf8'));
    }
  });

  it('skips braces inside strings when it looks for the end of the usage object', () => {
    const ev = 'data: {"id":"x","choices":[{"text":"a"}],"usage":{"note":"}{","prompt_tokens_details":{"cached_tokens":0}},"z":1}\n\n';
    const st = new SseUsageStripper();
    assert.equal(Buffer.concat([st.push(Buffer.from(ev)), st.end()]).toString(), 'data: {"id":"x","choices":[{"text":"a"}],"z":1}\n\n');
  });
});

function pick(o: Record<string, unknown>, key: string): Record<string, unknown> {
  return { [key]: o[key] };
}
