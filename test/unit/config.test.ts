import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseUpstream } from '../../src/config';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    assert.equal(c.upstream.origin, 'http://localhost:11434');
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.upstreamIdleTimeoutMs, 300_000);
    assert.equal(c.maxRequestBodyBytes, 64 * 1024 * 1024);
  });

  it("accepts OLLAMA_HOST as a URL or in Ollama's scheme-less form", () => {
    assert.equal(parseUpstream('http://127.0.0.1:11434').origin, 'http://127.0.0.1:11434');
    assert.equal(parseUpstream('127.0.0.1:11434').origin, 'http://127.0.0.1:11434');
    assert.equal(parseUpstream('ollama:11434').origin, 'http://ollama:11434');
    assert.equal(parseUpstream('ollama').origin, 'http://ollama:11434');
    assert.equal(parseUpstream('https://ollama.example').origin, 'https://ollama.example:443');
    assert.equal(parseUpstream('http://ollama.example').port, 80);
    assert.equal(parseUpstream('http://ollama:11434/').origin, 'http://ollama:11434');
    const v6 = parseUpstream('[::1]:11434');
    assert.equal(v6.hostname, '::1');
    assert.equal(v6.origin, 'http://[::1]:11434');
  });

  it('rejects a bad OLLAMA_HOST with one line naming the variable and the accepted form', () => {
    for (const bad of ['ftp://x:1', 'http://', 'http://host:99999', 'http://host/api?x=1', 'http://u:p@host:1', '', 'unix://relative']) {
      assert.throws(
        () => loadConfig({ OLLAMA_HOST: bad }),
        (err: Error) =>
          err instanceof ConfigError && err.message.startsWith('OLLAMA_HOST=') && err.message.includes('host:port') && !err.message.includes('\n'),
        bad,
      );
    }
  });

  it('accepts the other forms Ollama takes: :port, a path prefix, a Unix socket', () => {
    const portOnly = parseUpstream(':11500');
    assert.deepEqual([portOnly.hostname, portOnly.port, portOnly.origin], ['127.0.0.1', 11500, 'http://127.0.0.1:11500']);
    const prefixed = parseUpstream('https://gpu.example/ollama/');
    assert.deepEqual(
      [prefixed.hostname, prefixed.port, prefixed.pathPrefix, prefixed.origin],
      ['gpu.example', 443, '/ollama', 'https://gpu.example:443/ollama'],
    );
    assert.equal(parseUpstream('gpu:8080/v2/ollama').pathPrefix, '/v2/ollama');
    const unix = parseUpstream('unix:///run/ollama/ollama.sock');
    assert.deepEqual([unix.socketPath, unix.hostname, unix.origin], ['/run/ollama/ollama.sock', 'localhost', 'unix:///run/ollama/ollama.sock']);
  });

  it('reads LOG_LEVEL case-insensitively, with WARN as WARNING', () => {
    assert.equal(loadConfig({ LOG_LEVEL: 'debug' }).logLevel, 'debug');
    assert.equal(loadConfig({ LOG_LEVEL: 'Warning' }).logLevel, 'warn');
    assert.equal(loadConfig({ LOG_LEVEL: 'WARN' }).logLevel, 'warn');
    assert.equal(loadConfig({ LOG_LEVEL: 'ERROR' }).logLevel, 'error');
    assert.throws(() => loadConfig({ LOG_LEVEL: 'verbose' }), /LOG_LEVEL="verbose" is not valid: expected DEBUG, INFO, WARNING \(or WARN\) or ERROR/);
  });

  it('refuses placeholder keys and tokens from examples, which would work as keys anyone can guess', () => {
    for (const key of ['change-me', 'CHANGE_ME', 'change-me-too', 'replace-me', '<your-api-key>', 'your-key', 'xxxx', 'changeit']) {
      assert.throws(() => loadConfig({ GATEWAY_API_KEYS: `k1,${key}` }), /^ConfigError: GATEWAY_API_KEYS is not valid: it holds a placeholder/, key);
      assert.throws(() => loadConfig({ METRICS_BEARER_TOKEN: key }), /^ConfigError: METRICS_BEARER_TOKEN is not valid: it is a placeholder/, key);
    }
    for (const key of ['k1', 'sk-3f9a', 'exchange-meter-7', 'a'.repeat(48)]) {
      assert.deepEqual(loadConfig({ GATEWAY_API_KEYS: key, METRICS_BEARER_TOKEN: key }).apiKeys, [key]);
    }
  });

  it('rejects bad numbers, naming the variable', () => {
    assert.throws(() => loadConfig({ PORT: '80a' }), /^ConfigError: PORT="80a" is not valid: expected a whole number from 0 to 65535$/);
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT=/);
    assert.throws(() => loadConfig({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '0' }), /UPSTREAM_IDLE_TIMEOUT_SECONDS="0" is not valid/);
    assert.throws(() => loadConfig({ MAX_REQUEST_BODY_MB: 'lots' }), /MAX_REQUEST_BODY_MB="lots" is not valid/);
  });

  it('converts seconds and megabytes', () => {
    const c = loadConfig({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '1.5', MAX_REQUEST_BODY_MB: '0.5' });
    assert.equal(c.upstreamIdleTimeoutMs, 1500);
    assert.equal(c.maxRequestBodyBytes, 512 * 1024);
  });

  it("queues fairly at Ollama's default of one call per backend when tenants share it, and not otherwise", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'config-'));
    try {
      const file = path.join(dir, 'tenants.yaml');
      writeFileSync(file, 'tenants:\n  - name: a\n    keys: [sk-a-1234]\n  - name: b\n    keys: [sk-b-1234]\n');
      const shared = loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file });
      assert.deepEqual([...shared.backendParallel!.values()], [1]);
      assert.equal(loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, BACKEND_PARALLEL: '0' }).backendParallel, undefined);
      assert.deepEqual(
        [...loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, BACKEND_PARALLEL: '4' }).backendParallel!.values()],
        [4],
      );
      assert.equal(loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434' }).backendParallel, undefined);
      // Limits are reckoned from the ledger: with it off, the gateway says so rather than not enforcing them.
      writeFileSync(file, 'tenants:\n  - name: a\n    keys: [sk-a-1234]\n    limits: { tokens_per_day: 1000 }\n');
      assert.throws(() => loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, LEDGER_URL: 'off' }), /tenant "a" has limits/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
