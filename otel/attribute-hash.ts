/**
 * The SDK hashes a data point's attribute set on every record (sorting its keys and serialising
 * them: about 2 µs for a GenAI attribute set, some sixteen times per call). The gateway records
 * with attribute sets made once and frozen (attributes.ts), so the hash of each can be computed
 * once: the SDK's `hashAttributes` is wrapped to remember the hash of a frozen object. A frozen
 * object cannot change, so the remembered hash is always the one the SDK would compute; objects
 * that are not frozen are hashed as before. The wrapper must be in place before any instrument
 * exists (the SDK's attribute maps take the function when they are made).
 *
 * Should a future SDK move or rename the function, nothing breaks: `memoiseAttributeHashing`
 * returns false and the SDK hashes as it always did (a test pins that it is in place).
 */
import type { Attributes } from '@opentelemetry/api';

type Hash = (attributes: Attributes) => string;

let installed: boolean | undefined;

export function memoiseAttributeHashing(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const utils = require('@opentelemetry/sdk-metrics/build/src/utils') as { hashAttributes?: Hash };
    const original = utils.hashAttributes;
    if (typeof original !== 'function') return false;
    const known = new WeakMap<Attributes, string>();
    const memoised: Hash = (attributes) => {
      if (!Object.isFrozen(attributes)) return original(attributes);
      let hash = known.get(attributes);
      if (hash === undefined) {
        hash = original(attributes);
        known.set(attributes, hash);
      }
      return hash;
    };
    utils.hashAttributes = memoised;
    installed = utils.hashAttributes === memoised;
  } catch {
    installed = false;
  }
  return installed;
}

/** An attribute set the SDK hashes once: frozen, so it can never differ from its hash. */
export function fixedAttributes<T extends Attributes>(attributes: T): Readonly<T> {
  return Object.freeze(attributes);
}
