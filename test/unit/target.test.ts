/**
 * Request targets are normalised once, to the path the gateway routes on and forwards: every
 * spelling Ollama would serve as an LLM route becomes that route, and nothing else does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeTarget } from '../../src/request/target';

describe('request target normalisation', () => {
  it('leaves an ordinary path and its query as sent', () => {
    assert.deepEqual(normalizeTarget('/api/chat'), { path: '/api/chat', query: '' });
    assert.deepEqual(normalizeTarget('/api/tags?x=1&y=%2F'), { path: '/api/tags', query: '?x=1&y=%2F' });
    assert.deepEqual(normalizeTarget('/'), { path: '/', query: '' });
    assert.deepEqual(normalizeTarget('/api/blobs/sha256:0123abcd'), { path: '/api/blobs/sha256:0123abcd', query: '' });
  });

  for (const spelling of [
    '//api/chat',
    '/api//chat',
    '///api///chat',
    '/api/./chat',
    '/x/../api/chat',
    '/../api/chat',
    '/api/%63hat',
    '/api/%63%68%61%74',
    '/API/../api/chat',
    '/api%2Fchat',
    '/api%2fchat',
    '/api/%2e/chat',
  ]) {
    it(`reads ${spelling} as /api/chat`, () => {
      assert.equal(normalizeTarget(spelling)?.path, '/api/chat');
    });
  }

  it('takes the path of an absolute-form target, whatever its host', () => {
    assert.deepEqual(normalizeTarget('http://evil.example/api/chat?a=b'), { path: '/api/chat', query: '?a=b' });
    assert.deepEqual(normalizeTarget('HTTPS://127.0.0.1:9/v1//chat/completions'), { path: '/v1/chat/completions', query: '' });
    assert.deepEqual(normalizeTarget('http://host'), { path: '/', query: '' });
    assert.deepEqual(normalizeTarget('http://host?q'), { path: '/', query: '?q' });
  });

  it('decodes layer after layer, so what is forwarded cannot decode at Ollama into another path', () => {
    // One more layer: every digit of the escapes written as an escape itself ('6' → '%36').
    const layer = (s: string) => s.replace(/[0-9]/g, (d) => `%3${d}`);
    assert.equal(normalizeTarget('/api/%%36%33hat')?.path, '/api/chat');
    assert.equal(normalizeTarget(`/api/${layer(layer('%63'))}hat`)?.path, '/api/chat');
    assert.equal(normalizeTarget('/api/%2%36%33hat')?.path, '/api/%263hat');
    assert.equal(normalizeTarget('/%252525252563')?.path, '/%252525252563');
    assert.equal(normalizeTarget(`/api/${layer(layer(layer(layer('%63'))))}hat`), undefined);
  });

  it('keeps escapes of characters that are not unreserved, so no new path can appear', () => {
    assert.equal(normalizeTarget('/api/chat%20')?.path, '/api/chat%20');
    assert.equal(normalizeTarget('/api/%2563hat')?.path, '/api/%2563hat');
    assert.equal(normalizeTarget('/api/ch%zzat')?.path, '/api/ch%zzat');
  });

  it('keeps a trailing slash (Ollama redirects it; it is not the route)', () => {
    assert.equal(normalizeTarget('/api/chat/')?.path, '/api/chat/');
    assert.equal(normalizeTarget('/api//chat//')?.path, '/api/chat/');
  });

  it('refuses what is neither origin-form nor absolute-form', () => {
    for (const bad of ['api/chat', '*', 'ftp://host/api/chat', 'localhost:11434', '', 'http://host#frag/api/chat', '/api/chat#x']) {
      assert.equal(normalizeTarget(bad), undefined, bad);
    }
  });
});
