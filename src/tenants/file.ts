/**
 * The tenants file (`GATEWAY_TENANTS_FILE`): YAML, so JSON works too, because people edit it by
 * hand and want comments. Parsed once into plain data; the identity of a call is decided from that
 * data alone (`registry.ts`).
 *
 * ```yaml
 * tenants:
 *   - name: research
 *     keys: [sk-research-1, "sha256:9f86d0…"]     # plain, or the key's SHA-256 digest in hex
 *   - name: webui
 *     keys: [sk-webui]
 *     users: { header: X-OpenWebUI-User-Id }       # may assert its end users with this header
 * ```
 *
 * Entries may carry more fields (`weight`, `priority`, `models`, `limits`, and `limits` under
 * `users`) for the scheduler and budgets; they are kept as given, unknown ones are ignored.
 */
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import { parseRules, RulesError, validTimeZone, type TenantRules } from './rules';

/** The header Open WebUI forwards its user's id in (`ENABLE_FORWARD_USER_INFO_HEADERS`). */
export const OPEN_WEBUI_USER_HEADER = 'x-openwebui-user-id';

/** Most tenants in one file; the `tenant` label is bounded by it. */
export const MAX_TENANTS = 1000;
/** Most keys one tenant may have. */
export const MAX_KEYS_PER_TENANT = 100;
/** Largest tenants file read. */
export const MAX_TENANTS_FILE_BYTES = 1024 * 1024;

/** A tenant name: a label value and a file-name-safe word. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Whether `s` can be a tenant's name (one in a tenants file, `key-<fingerprint>` or `anonymous`). */
export const isTenantName = (s: string): boolean => NAME.test(s);
/** An HTTP header name (RFC 9110 token). */
const HEADER = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const DIGEST = /^sha256:([0-9a-fA-F]{64})$/;

export interface TenantSpec {
  name: string;
  /** SHA-256 digests of the keys (the file may give either the key or its digest). */
  keyDigests: Buffer[];
  /** The header (lower case) this tenant may assert its end users with; undefined: none. */
  userHeader?: string;
  /** The entry as written, for the fields other parts read (weight, priority). */
  raw: Readonly<Record<string, unknown>>;
  /** The models it may use and its limits (`rules.ts`); none for tenants made from API keys. */
  rules?: TenantRules;
}

export class TenantsFileError extends Error {
  override name = 'TenantsFileError';
}

export const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The short fingerprint of a key's digest that logs, spans and the ledger may carry: 8 hex digits. */
export const fingerprint = (digest: Buffer): string => digest.subarray(0, 4).toString('hex');

/** Parses the text of a tenants file; throws TenantsFileError naming the first problem. */
export function parseTenantsFile(text: string): TenantSpec[] {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new TenantsFileError(`not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const list = (doc as { tenants?: unknown } | null)?.tenants;
  if (!Array.isArray(list)) throw new TenantsFileError('expected a top-level "tenants:" list');
  if (list.length > MAX_TENANTS) throw new TenantsFileError(`at most ${MAX_TENANTS} tenants, got ${list.length}`);
  const timeZone = (doc as { time_zone?: unknown }).time_zone ?? 'UTC';
  if (typeof timeZone !== 'string' || !validTimeZone(timeZone)) throw new TenantsFileError('time_zone must be an IANA time zone such as UTC or Europe/Berlin');
  const names = new Set<string>();
  const keys = new Map<string, string>();
  return list.map((entry: unknown, i): TenantSpec => {
    const at = `tenants[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new TenantsFileError(`${at}: expected a mapping with name and keys`);
    const e = entry as Record<string, unknown>;
    const name = e.name;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new TenantsFileError(`${at}: name must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    }
    if (name === ANONYMOUS_TENANT) throw new TenantsFileError(`${at}: the name "${ANONYMOUS_TENANT}" is reserved for calls without a key`);
    if (names.has(name)) throw new TenantsFileError(`${at}: tenant "${name}" is listed twice`);
    names.add(name);
    if (!Array.isArray(e.keys) || e.keys.length === 0) throw new TenantsFileError(`tenant "${name}": keys must be a non-empty list`);
    if (e.keys.length > MAX_KEYS_PER_TENANT) throw new TenantsFileError(`tenant "${name}": at most ${MAX_KEYS_PER_TENANT} keys`);
    const keyDigests = e.keys.map((k: unknown, j) => {
      if (typeof k !== 'string' || k.trim() === '' || /\s/.test(k.trim()) || k.length > 4096) {
        throw new TenantsFileError(`tenant "${name}": keys[${j}] must be a string without white space`);
      }
      const d = DIGEST.exec(k.trim());
      const digest = d ? Buffer.from(d[1]!, 'hex') : sha256(k.trim());
      const hex = digest.toString('hex');
      const owner = keys.get(hex);
      if (owner !== undefined) throw new TenantsFileError(`tenant "${name}": keys[${j}] is also a key of "${owner}"`);
      keys.set(hex, name);
      return digest;
    });
    let userHeader: string | undefined;
    if (e.users !== undefined && e.users !== null && e.users !== false) {
      const users = e.users === true ? {} : e.users;
      if (typeof users !== 'object' || Array.isArray(users))
        throw new TenantsFileError(`tenant "${name}": users must be a mapping, e.g. { header: X-OpenWebUI-User-Id }`);
      const header = (users as Record<string, unknown>).header ?? OPEN_WEBUI_USER_HEADER;
      if (typeof header !== 'string' || !HEADER.test(header)) throw new TenantsFileError(`tenant "${name}": users.header must be an HTTP header name`);
      const lower = header.toLowerCase();
      if (lower === 'authorization' || lower === 'x-api-key' || lower === 'host')
        throw new TenantsFileError(`tenant "${name}": users.header cannot be ${header}`);
      userHeader = lower;
    }
    let rules: TenantRules;
    try {
      rules = parseRules(e, name, timeZone);
    } catch (err) {
      if (err instanceof RulesError) throw new TenantsFileError(err.message);
      throw err;
    }
    return { name, keyDigests, userHeader, raw: e, rules };
  });
}

/**
 * Limits are reckoned from the usage ledger: with it off (`LEDGER_URL=off`), a file that sets any
 * is refused, at start and on a reload alike, rather than counted in memory and lost on a restart.
 */
export function requireLedgerForLimits(specs: readonly TenantSpec[], ledgerUrl: string): void {
  if (ledgerUrl !== 'off') return;
  const limited = specs.find((t) => t.rules?.tenant || t.rules?.user);
  if (limited) {
    throw new TenantsFileError(
      `tenant "${limited.name}" has limits, which are reckoned from the usage ledger: turn the ledger on (unset LEDGER_URL=off) or remove the limits`,
    );
  }
}

/** The tenant of calls when no key is configured at all. */
export const ANONYMOUS_TENANT = 'anonymous';

/**
 * `GATEWAY_API_KEYS` / `GATEWAY_API_KEYS_FILE` as tenants: each key its own tenant, named by its
 * fingerprint (`key-1a2b3c4d`), so the ledger tells keys apart without holding any.
 */
export function tenantsOfKeys(keys: readonly string[]): TenantSpec[] {
  const seen = new Set<string>();
  const out: TenantSpec[] = [];
  for (const k of keys) {
    const digest = sha256(k);
    const hex = digest.toString('hex');
    if (seen.has(hex)) continue;
    seen.add(hex);
    // Two keys whose fingerprints collide (1 in 4 billion) are told apart by a longer one.
    const short = `key-${fingerprint(digest)}`;
    const name = out.some((t) => t.name === short) ? `key-${hex.slice(0, 16)}` : short;
    out.push({ name, keyDigests: [digest], raw: { name } });
  }
  return out;
}
