/**
 * Who a call belongs to, for fair queueing: one small function the tenants file fills in. Until a
 * tenant has its own entry, each API key is its own tenant (named by a short fingerprint, never the
 * key), and a call without a key is `anonymous`; every tenant has weight 1 and is interactive.
 */
import { createHash } from 'node:crypto';

export type Priority = 'interactive' | 'batch';

export interface TenantPolicy {
  /** The `tenant` label: bounded by the configuration (one per key or tenants-file entry). */
  name: string;
  /** Share of the slots relative to other tenants (default 1). */
  weight: number;
  /** Interactive calls are released before any batch call. */
  priority: Priority;
}

export const ANONYMOUS = 'anonymous';

/** A key's short, stable fingerprint: enough to tell keys apart, nothing to recover one from. */
export function keyFingerprint(key: string): string {
  return 'key-' + createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** Per tenant name, what the configuration says; absent names get the defaults. */
export type TenantPolicies = ReadonlyMap<string, Partial<Omit<TenantPolicy, 'name'>>>;

export class Tenants {
  private readonly byKey = new Map<string, TenantPolicy>();
  private readonly anonymous: TenantPolicy;

  constructor(keys: readonly string[], policies: TenantPolicies = new Map()) {
    const policy = (name: string): TenantPolicy => {
      const p = policies.get(name);
      return { name, weight: p?.weight ?? 1, priority: p?.priority ?? 'interactive' };
    };
    for (const key of keys) this.byKey.set(key, policy(keyFingerprint(key)));
    this.anonymous = policy(ANONYMOUS);
  }

  /** The tenant of a call that presented `key` (already checked by auth), or anonymous. */
  of(key: string | undefined): TenantPolicy {
    return (key !== undefined && this.byKey.get(key)) || this.anonymous;
  }

  /** Every tenant the configuration knows: the label values `tenant` can take. */
  names(): string[] {
    return [this.anonymous.name, ...[...this.byKey.values()].map((t) => t.name)];
  }
}
