/**
 * With API keys on, the Anthropic header `x-api-key` is accepted on every path an Anthropic client
 * calls, not only on `/v1/messages`: Claude Code with `ANTHROPIC_API_KEY` calls
 * `/v1/messages/count_tokens` for every `/context`. The header is never forwarded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic, { AuthenticationError, NotFoundError } from '@anthropic-ai/sdk';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { exchange, rawRequest } from '../helpers/raw-client';

const KEY = 'sk-gateway';
const COUNT = '/v1/messages/count_tokens';

/** A client that sends only the headers it is given (no credential searched for in the environment). */
class HeadersOnlyClient extends Anthropic {
  protected override _shouldResolveDefaultCredentials(): boolean {
    return false;
  }
}

describe('x-api-key on every Anthropic path', () => {
  let s: TestStack;
  before(async () => {
    s = await startStack({ GATEWAY_API_KEYS: `other-key, ${KEY}` });
  });
  after(() => s.close());

  const failures = async (reason: string): Promise<number> =>
    sample(await metricsText(s.url), 'ollama_gateway_auth_failures_total', { reason, scope: 'api' }) ?? 0;

  it('the Anthropic SDK counting tokens with the key in x-api-key reaches Ollama, without the key', async () => {
    const client = new HeadersOnlyClient({ baseURL: s.url, maxRetries: 0, apiKey: null, authToken: null, defaultHeaders: { 'x-api-key': KEY } });
    const params = { model: 'llama3.2', messages: [{ role: 'user' as const, content: 'hi' }] };
    // Ollama does not serve count_tokens: its own 404 comes back, not the gateway's 401.
    await assert.rejects(client.messages.countTokens(params), (err: unknown) => err instanceof NotFoundError);
    const got = s.fake.last(COUNT);
    assert.ok(got, 'the request reached Ollama');
    assert.equal(got.headers['x-api-key'], undefined);
    assert.equal(got.headers.authorization, undefined);
    assert.ok(!got.rawHeaders.some((h) => h.includes(KEY)), 'the key reaches Ollama in no header');
    assert.equal(await failures('missing'), 0);
    assert.equal(await failures('invalid'), 0);

    const wrong = new HeadersOnlyClient({ baseURL: s.url, maxRetries: 0, apiKey: null, authToken: null, defaultHeaders: { 'x-api-key': 'sk-wrong' } });
    const seen = s.fake.requests.length;
    await assert.rejects(wrong.messages.countTokens(params), (err: unknown) => err instanceof AuthenticationError && err.status === 401);
    assert.equal(s.fake.requests.length, seen, 'a wrong key never reaches Ollama');
    assert.equal(await failures('invalid'), 1);
  });

  it('raw requests: x-api-key is accepted on the Anthropic paths and refused elsewhere', async () => {
    const send = (method: string, path: string) =>
      exchange(
        s.gw.port,
        rawRequest(method, path, { headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined }),
      );
    for (const [method, path] of [
      ['POST', COUNT],
      ['POST', '/v1/messages/batches'],
      ['GET', '/v1/models'],
      ['GET', '/v1/models/llama3.2'],
    ] as const) {
      const before = s.fake.requests.length;
      const { responses, describe } = await send(method, path);
      assert.notEqual(responses[0]?.status, 401, `${path}: ${describe()}`);
      assert.equal(s.fake.requests.length, before + 1, `${path} reached Ollama`);
      assert.equal(s.fake.requests.at(-1)!.headers['x-api-key'], undefined);
    }
    // Not an Anthropic path: only Bearer is taken there.
    const missing = await failures('missing');
    const { responses } = await send('POST', '/api/chat');
    assert.equal(responses[0]?.status, 401);
    assert.equal(await failures('missing'), missing + 1);
  });
});
