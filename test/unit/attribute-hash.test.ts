/**
 * The SDK's attribute hashing, remembered for frozen attribute sets (otel/attribute-hash.ts): in
 * place with the SDK version the project pins, and giving exactly the SDK's own hashes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixedAttributes, memoiseAttributeHashing } from '../../otel/attribute-hash';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const utils = () => require('@opentelemetry/sdk-metrics/build/src/utils') as { hashAttributes: (a: object) => string };

describe('attribute hashing', () => {
  it('is memoised in the SDK the project uses (a moved or renamed function fails here, not silently)', () => {
    assert.equal(memoiseAttributeHashing(), true);
    assert.equal(memoiseAttributeHashing(), true, 'installing twice keeps one wrapper');
  });

  it("gives the SDK's own hash for frozen sets, and hashes sets that may change each time", () => {
    memoiseAttributeHashing();
    const hash = utils().hashAttributes;
    const frozen = fixedAttributes({ model: 'llama3.2:latest', endpoint: '/api/chat' });
    const expected = JSON.stringify([
      ['endpoint', '/api/chat'],
      ['model', 'llama3.2:latest'],
    ]);
    assert.equal(hash(frozen), expected);
    assert.equal(hash(frozen), expected, 'the remembered hash is the same');
    assert.equal(hash({ endpoint: '/api/chat', model: 'llama3.2:latest' }), expected, 'key order does not matter');
    const open: Record<string, string> = { model: 'a' };
    assert.equal(hash(open), JSON.stringify([['model', 'a']]));
    open.model = 'b';
    assert.equal(hash(open), JSON.stringify([['model', 'b']]), 'a set that is not frozen is hashed anew');
    assert.equal(hash({}), '');
  });
});
