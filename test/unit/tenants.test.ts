/**
 * The tenants file and the identity of a call: parsing and its errors, which tenant a key is,
 * who may assert end users (and the headers nobody vouched for, stripped), and reloads that keep
 * the tenants in use when the new file is bad.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger';
import { parseTenantsFile, tenantsOfKeys, TenantsFileError } from '../../src/tenants/file';
import { boundedUserId, MAX_USER_ID_CHARS, Tenants } from '../../src/tenants/registry';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');

const FILE = `
# three tenants
tenants:
  - name: research
    keys: [sk-research]
    weight: 2                 # read by the scheduler, kept as given
  - name: batch
    keys: ["sha256:${hex('sk-batch')}"]
  - name: webui
    keys: [sk-webui]
    users: {}                 # Open WebUI's header by default
  - name: custom-app
    keys: [sk-custom]
    users: { header: X-App-User }
`;

function logs(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

describe('the tenants file', () => {
  it('names tenants with plain keys or SHA-256 digests, and who may assert users with which header', () => {
    const specs = parseTenantsFile(FILE);
    assert.deepEqual(
      specs.map((s) => [s.name, s.userHeader]),
      [
        ['research', undefined],
        ['batch', undefined],
        ['webui', 'x-openwebui-user-id'],
        ['custom-app', 'x-app-user'],
      ],
    );
    assert.equal(specs[0]!.raw.weight, 2);
    assert.equal(specs[1]!.keyDigests[0]!.toString('hex'), hex('sk-batch'));
  });

  it('reads JSON as well', () => {
    const specs = parseTenantsFile(JSON.stringify({ tenants: [{ name: 'a', keys: ['k1'] }] }));
    assert.equal(specs[0]!.name, 'a');
  });

  const bad: [string, string, RegExp][] = [
    ['no list', 'tenants: 3', /top-level "tenants:" list/],
    ['a name twice', 'tenants: [{name: a, keys: [k1]}, {name: a, keys: [k2]}]', /listed twice/],
    ['a key of two tenants', 'tenants: [{name: a, keys: [k1]}, {name: b, keys: [k1]}]', /also a key of "a"/],
    ['a digest of a key another has', `tenants: [{name: a, keys: [k1]}, {name: b, keys: ["sha256:${hex('k1')}"]}]`, /also a key of "a"/],
    ['no keys', 'tenants: [{name: a, keys: []}]', /non-empty list/],
    ['a name with a space', 'tenants: [{name: "a b", keys: [k]}]', /name must be/],
    ['the reserved name', 'tenants: [{name: anonymous, keys: [k]}]', /reserved/],
    ['a header that is not one', 'tenants: [{name: a, keys: [k], users: {header: "x y"}}]', /HTTP header name/],
    ['the authorization header', 'tenants: [{name: a, keys: [k], users: {header: Authorization}}]', /cannot be/],
    ['broken YAML', 'tenants: [', /not valid YAML/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}`, () =>
      assert.throws(
        () => parseTenantsFile(text),
        (e: unknown) => e instanceof TenantsFileError && message.test(e.message),
      ));
  }

  it('makes each GATEWAY_API_KEYS key its own tenant, named by its fingerprint', () => {
    const specs = tenantsOfKeys(['k1', 'k2', 'k1']);
    assert.deepEqual(
      specs.map((s) => s.name),
      [`key-${hex('k1').slice(0, 8)}`, `key-${hex('k2').slice(0, 8)}`],
    );
  });
});

describe('a call’s identity', () => {
  const tenants = new Tenants(parseTenantsFile(FILE));

  it('is the tenant whose key it presented, with the key’s fingerprint and never the key', () => {
    assert.deepEqual(tenants.admit('Bearer sk-research'), { identity: { tenant: 'research', keyFingerprint: hex('sk-research').slice(0, 8) } });
    assert.equal(tenants.admit('Bearer sk-batch').identity?.tenant, 'batch', 'a digest in the file matches the key');
    assert.deepEqual(tenants.admit('Bearer nope'), { failure: 'invalid' });
    assert.deepEqual(tenants.admit(undefined), { failure: 'missing' });
    assert.equal(tenants.admit(undefined, 'sk-webui').identity?.tenant, 'webui', 'x-api-key where it is accepted');
  });

  it('is `anonymous` when no key is configured', () => {
    const open = new Tenants([]);
    assert.equal(open.enabled, false);
    assert.deepEqual(open.admit(undefined), { identity: { tenant: 'anonymous' } });
    assert.deepEqual(open.names, ['anonymous']);
  });

  it('carries the end user a tenant may assert, and the header is forwarded', () => {
    const id = tenants.admit('Bearer sk-webui').identity!;
    const headers = { 'x-openwebui-user-id': 'u-42', 'x-openwebui-user-email': 'a@b.c', 'x-app-user': 'forged' };
    tenants.assertUser(id, headers);
    assert.equal(id.user, 'u-42');
    assert.deepEqual(headers, { 'x-openwebui-user-id': 'u-42', 'x-openwebui-user-email': 'a@b.c' }, "another tenant's header is stripped");
  });

  it('ignores and strips a user header from a tenant not allowed to assert users', () => {
    const id = tenants.admit('Bearer sk-research').identity!;
    const headers: Record<string, string> = { 'x-openwebui-user-id': 'ceo', 'x-openwebui-user-role': 'admin', 'x-app-user': 'ceo', accept: '*/*' };
    tenants.assertUser(id, headers);
    assert.equal(id.user, undefined);
    assert.deepEqual(headers, { accept: '*/*' });
  });

  it('keeps user ids bounded in length and characters', () => {
    assert.equal(boundedUserId('alice@example.com'), 'alice@example.com');
    assert.equal(boundedUserId('x'.repeat(MAX_USER_ID_CHARS)), 'x'.repeat(MAX_USER_ID_CHARS));
    assert.equal(boundedUserId('x'.repeat(MAX_USER_ID_CHARS + 1)), undefined);
    for (const bad of ['a b', 'a,b', 'a"b', 'a\nb', 'é', '', ' ']) assert.equal(boundedUserId(bad), undefined, JSON.stringify(bad));
    assert.equal(boundedUserId(['a', 'b']), undefined, 'a repeated header is no one');
    const id = tenants.admit('Bearer sk-custom').identity!;
    tenants.assertUser(id, { 'x-app-user': 'a'.repeat(500) });
    assert.equal(id.user, undefined, 'an id past the bound is not kept');
  });
});

describe('reloading the tenants file', () => {
  it('takes a valid new file, and keeps the tenants in use when the new one is bad', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenants-'));
    const file = path.join(dir, 'tenants.yaml');
    try {
      writeFileSync(file, 'tenants: [{name: a, keys: [k1]}]');
      const { log, lines } = logs();
      const tenants = new Tenants(parseTenantsFile('tenants: [{name: a, keys: [k1]}]'), { path: file, text: 'tenants: [{name: a, keys: [k1]}]' });
      assert.equal(tenants.reload(log, 'test'), false, 'the same text is no change');
      writeFileSync(file, 'tenants: [{name: a, keys: [k1]}, {name: b, keys: [k2]}]');
      assert.equal(tenants.reload(log, 'test'), true);
      assert.equal(tenants.admit('Bearer k2').identity?.tenant, 'b');
      writeFileSync(file, 'tenants: [{name: a, keys: [k1]}, {name: a, keys: [k3]}]');
      assert.equal(tenants.reload(log, 'test'), false);
      assert.equal(tenants.admit('Bearer k2').identity?.tenant, 'b', 'the old tenants stay');
      const warning = lines.find((l) => l.msg === 'tenants file not reloaded: it is not valid; keeping the tenants in use');
      assert.match(String(warning?.reason), /listed twice/);
      assert.ok(!JSON.stringify(lines).includes('k3'), 'no key in the log');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
