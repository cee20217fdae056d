/**
 * The LLM endpoints Ollama added after the first table: speech to text
 * (`POST /v1/audio/transcriptions`, multipart, the model in a form field) and Codex's compaction
 * (`POST /v1/responses/compact`). Both are measured like every other LLM call: counted under
 * their model, held to the body limit and the concurrency limit; an unreadable form is refused in
 * Ollama's own words before it reaches Ollama.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { exchange, rawRequest } from '../helpers/raw-client';

const T = '/v1/audio/transcriptions';
const C = '/v1/responses/compact';
const M = { model: 'llama3.2:latest' };
const AUDIO = Buffer.from('RIFF\u0000\u0000\u0000\u0000WAVEfmt fake audio bytes', 'latin1');

/** A multipart body with `fields` (in order), and a file part `file`. */
function form(boundary: string, fields: [string, string][], file = AUDIO): Buffer {
  const parts = fields.map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
  return Buffer.concat([
    Buffer.from(parts.join('')),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

async function post(url: string, path: string, body: Buffer, contentType: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(body) });
  return { status: res.status, body: await res.text() };
}

describe('POST /v1/audio/transcriptions and /v1/responses/compact are measured', () => {
  let s: TestStack;
  let client: OpenAI;
  before(async () => {
    s = await startStack({ MAX_REQUEST_BODY_MB: '1' });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'ollama', maxRetries: 0 });
  });
  after(() => s.close());

  const count = async (path: string, status: string, labels = M): Promise<number> =>
    sample(await metricsText(s.url), 'ollama_requests_total', { ...labels, endpoint: path, status }) ?? 0;
  const errors = async (path: string, reason: string, labels = M): Promise<number> =>
    sample(await metricsText(s.url), 'ollama_request_errors_total', { ...labels, endpoint: path, reason }) ?? 0;

  it('the OpenAI SDK transcribing a file is counted under the form’s model, and Ollama gets the form as sent', async () => {
    const res = await client.audio.transcriptions.create({ model: 'llama3.2', file: await toFile(AUDIO, 'a.wav') });
    assert.equal(res.text, 'The quick brown fox jumps over the lazy dog.');
    assert.equal(await count(T, '200'), 1);
    const got = s.fake.last(T)!;
    assert.match(String(got.headers['content-type']), /^multipart\/form-data; boundary=/);
    assert.ok(got.body.includes(AUDIO), 'the audio reached Ollama unchanged');
    const text = await client.audio.transcriptions.create({ model: 'llama3.2', file: await toFile(AUDIO, 'a.wav'), response_format: 'text' });
    assert.equal(text, 'The quick brown fox jumps over the lazy dog.');
    assert.equal(await count(T, '200'), 2);
    assert.equal(await errors(T, 'stream_error'), 0, 'an answer without usage is no broken answer');
  });

  it('a model in the query wins over the form, as Go’s FormValue has it', async () => {
    const b = 'q1';
    const res = await post(s.url, `${T}?model=qwen3%3A8b`, form(b, [['model', 'llama3.2']]), `multipart/form-data; boundary=${b}`);
    assert.equal(res.status, 200);
    assert.equal(await count(T, '200', { model: 'qwen3:8b' }), 1);
  });

  it('refuses a form without a model, or one it cannot read as Go does, with Ollama’s 400, before Ollama', async () => {
    const seen = s.fake.requests.length;
    const before = await errors(T, 'body_unreadable', { model: 'unknown' });
    const b = 'xyz';
    const cases: [string, Buffer, string, RegExp][] = [
      ['no model', form(b, [['language', 'en']]), `multipart/form-data; boundary=${b}`, /^model is required$/],
      ['an empty model', form(b, [['model', '']]), `multipart/form-data; boundary=${b}`, /^model is required$/],
      ['not multipart', Buffer.from('{"model":"llama3.2"}'), 'application/json', /isn't multipart\/form-data/],
      ['no boundary', form(b, [['model', 'llama3.2']]), 'multipart/form-data', /no multipart boundary/],
      ['another boundary', form(b, [['model', 'llama3.2']]), 'multipart/form-data; boundary=other', /failed to parse multipart form/],
      [
        'LF line ends',
        Buffer.from(
          form(b, [['model', 'llama3.2']])
            .toString('latin1')
            .replace(/\r\n/g, '\n'),
          'latin1',
        ),
        `multipart/form-data; boundary=${b}`,
        /failed to parse/,
      ],
      [
        'a quoted-printable model',
        Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nllama=33.2\r\n--${b}--\r\n`),
        `multipart/form-data; boundary=${b}`,
        /quoted-printable/,
      ],
      [
        'an encoded field name',
        Buffer.from(`--${b}\r\nContent-Disposition: form-data; name*=utf-8''model\r\n\r\nllama3.2\r\n--${b}--\r\n`),
        `multipart/form-data; boundary=${b}`,
        /malformed MIME header/,
      ],
      [
        'no closing delimiter',
        Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="model"\r\n\r\nllama3.2\r\n`),
        `multipart/form-data; boundary=${b}`,
        /EOF/,
      ],
      [
        'huge part headers',
        Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="model"\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\nllama3.2\r\n--${b}--\r\n`),
        `multipart/form-data; boundary=${b}`,
        /headers too large/,
      ],
    ];
    for (const [what, body, contentType, message] of cases) {
      const res = await post(s.url, T, body, contentType);
      assert.equal(res.status, 400, what);
      const err = (JSON.parse(res.body) as { error: { message: string; type: string } }).error;
      assert.match(err.message, message, what);
      assert.equal(err.type, 'invalid_request_error', what);
    }
    assert.equal(s.fake.requests.length, seen, 'Ollama saw none of them');
    assert.equal(await errors(T, 'body_unreadable', { model: 'unknown' }), before + cases.length);
  });

  it('holds a transcription to the body limit', async () => {
    const b = 'big';
    const res = await post(s.url, T, form(b, [['model', 'llama3.2']], Buffer.alloc(2 * 1024 * 1024, 1)), `multipart/form-data; boundary=${b}`);
    assert.equal(res.status, 413);
    assert.equal(await errors(T, 'body_too_large', { model: 'unknown' }), 1);
  });

  it('the OpenAI SDK compacting a conversation is counted with its tokens', async () => {
    const m0 = await metricsText(s.url);
    const tokensBefore = sample(m0, 'ollama_tokens_processed_total', M) ?? 0;
    const generatedBefore = sample(m0, 'ollama_tokens_generated_total', M) ?? 0;
    const res = await client.responses.compact({ model: 'llama3.2', input: [{ role: 'user', content: 'Say this is a test' }] });
    assert.equal(res.object, 'response.compaction');
    const m = await metricsText(s.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: C, status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', M), tokensBefore + 412);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), generatedBefore + 58);
    assert.equal(JSON.parse(s.fake.last(C)!.body.toString()).model, 'llama3.2');
  });

  it('counts a transcription in flight against MAX_CONCURRENT_REQUESTS (raw)', async () => {
    const limited = await startStack({ MAX_CONCURRENT_REQUESTS: '1', QUEUE_TIMEOUT_SECONDS: '0.2' });
    try {
      const b = 'c';
      limited.fake.next({ kind: 'hang' }, T);
      const body = form(b, [['model', 'llama3.2']]);
      const head = { 'content-type': `multipart/form-data; boundary=${b}` };
      const first = exchange(limited.gw.port, rawRequest('POST', T, { body, headers: head }), { ms: 1500 });
      await new Promise((r) => setTimeout(r, 100));
      const second = await exchange(limited.gw.port, rawRequest('POST', T, { body, headers: head }), { ms: 3000 });
      assert.equal(second.responses[0]?.status, 503, second.describe());
      await first;
      assert.equal(sample(await metricsText(limited.url), 'ollama_request_errors_total', { ...M, endpoint: T, reason: 'queue_timeout' }), 1);
    } finally {
      await limited.close();
    }
  });
});
