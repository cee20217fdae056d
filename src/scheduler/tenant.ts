/**
 * A tenant's standing in the fair queue: its weight and priority class, read from its entry in the
 * tenants file (`weight`: a positive number, default 1; `priority`: `interactive`, the default, or
 * `batch`). Tenants made from API keys, and `anonymous`, have the defaults.
 */
import { createHash } from 'node:crypto';

export type Priority = 'interactive' | 'batch';

export interface TenantPolicy {
  /** The `tenant` label: bounded by the configuration. */
  name: string;
  /** Share of the slots relative to other tenants (default 1). */
  weight: number;
  /** Interactive calls are released before any batch call. */
  priority: Priority;
}

/** Per tenant name, a weight and priority that override the tenants file's (tests, benchmarks). */
export type TenantPolicies = ReadonlyMap<string, Partial<Omit<TenantPolicy, 'name'>>>;

/** The most weight one tenant may have over another: keeps virtual times finite and comparable. */
const MAX_WEIGHT = 1000;

/** The name a key's tenant has when it comes from GATEWAY_API_KEYS: `key-` and 8 hex digits of its SHA-256. */
export function keyFingerprint(key: string): string {
  return 'key-' + createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** The policy of tenant `name`, from its tenants-file entry as written (`raw`) and any override. */
export function policyOf(name: string, raw: Readonly<Record<string, unknown>> | undefined, override?: Partial<Omit<TenantPolicy, 'name'>>): TenantPolicy {
  const w = override?.weight ?? raw?.weight;
  const weight = typeof w === 'number' && Number.isFinite(w) && w > 0 ? Math.min(w, MAX_WEIGHT) : 1;
  const priority = (override?.priority ?? raw?.priority) === 'batch' ? 'batch' : 'interactive';
  return { name, weight, priority };
}
