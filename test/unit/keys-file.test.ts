/**
 * API keys from GATEWAY_API_KEYS and GATEWAY_API_KEYS_FILE. A keys setting that yields no key is a
 * configuration error, never "no authentication": a Secret that mounts empty must not open Ollama
 * to everyone. A keys-file error names GATEWAY_API_KEYS_FILE and the line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function keysFile(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('GATEWAY_API_KEYS_FILE', () => {
  for (const [name, text] of [
    ['empty', ''],
    ['blank lines', '\n  \n\r\n'],
    ['comments only', '# the keys go here\n  # one per line\n'],
  ] as const) {
    it(`a file with no key (${name}) is a configuration error naming GATEWAY_API_KEYS_FILE`, () => {
      const file = keysFile(`${name}.keys`, text);
      const err = refusal({ GATEWAY_API_KEYS_FILE: file });
      assert.match(err.message, /^GATEWAY_API_KEYS_FILE=/);
      assert.match(err.message, /no API key/);
      assert.ok(err.message.includes(JSON.stringify(file)), err.message);
    });
  }

  it('a file with no key is an error even when GATEWAY_API_KEYS holds keys', () => {
    const err = refusal({ GATEWAY_API_KEYS: 'key-one', GATEWAY_API_KEYS_FILE: keysFile('none-with-env.keys', '# nothing yet\n') });
    assert.match(err.message, /^GATEWAY_API_KEYS_FILE=.*no API key/);
  });

  it('a key with white space inside is refused with the file and the line, not GATEWAY_API_KEYS', () => {
    const err = refusal({ GATEWAY_API_KEYS_FILE: keysFile('spaced.keys', '# keys\nkey-one\n\nkey two\n') });
    assert.match(err.message, /^GATEWAY_API_KEYS_FILE=.*line 4\b/);
    assert.doesNotMatch(err.message, /^GATEWAY_API_KEYS is/);
  });

  it('a placeholder key from an example is refused with the file and the line', () => {
    const err = refusal({ GATEWAY_API_KEYS_FILE: keysFile('placeholder.keys', 'key-one\nchange-me\n') });
    assert.match(err.message, /^GATEWAY_API_KEYS_FILE=.*line 2 holds a placeholder/);
  });

  it('keys around comments and blank lines are read, with those of GATEWAY_API_KEYS', () => {
    const config = loadConfig({ GATEWAY_API_KEYS: 'key-zero', GATEWAY_API_KEYS_FILE: keysFile('good.keys', '# keys\r\n key-one \n\n# old: key-x\nkey-two\n') });
    assert.deepEqual(config.apiKeys, ['key-zero', 'key-one', 'key-two']);
  });
});

describe('GATEWAY_API_KEYS', () => {
  it('set but holding no key (only commas and spaces) is a configuration error', () => {
    assert.match(refusal({ GATEWAY_API_KEYS: ' , ,' }).message, /^GATEWAY_API_KEYS=.*holds no key/);
  });

  it('unset or empty means no authentication', () => {
    assert.deepEqual(loadConfig({}).apiKeys, []);
    assert.deepEqual(loadConfig({ GATEWAY_API_KEYS: '' }).apiKeys, []);
  });
});
