/**
 * Who a call is: its tenant (by the key it presented, compared in constant time against every
 * configured key), the key's fingerprint, and, for a tenant allowed to assert them, its end user.
 * Decided once, at admission. The table is replaced whole on a reload, so a call admitted under
 * the old table keeps the identity it got.
 */
import { readFileSync, statSync, unwatchFile, watch, watchFile, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import { bearerKey, headerKey, matchDigest, type AuthFailure } from '../auth';
import type { Logger } from '../logger';
import { ANONYMOUS_TENANT, fingerprint, MAX_TENANTS_FILE_BYTES, OPEN_WEBUI_USER_HEADER, parseTenantsFile, sha256, type TenantSpec } from './file';

/** The identity of one call. */
export interface CallIdentity {
  tenant: string;
  /** The first 8 hex digits of the SHA-256 of the key it presented; never the key. */
  keyFingerprint?: string;
  /** The end user the tenant asserted, when it may and the value is a valid id. */
  user?: string;
}

/** Longest end-user id kept; longer ones are ignored (the call is the tenant's alone). */
export const MAX_USER_ID_CHARS = 128;
/** Printable ASCII without spaces, quotes, backslash or commas (CSV, logs, the console). */
const USER_ID = /^[A-Za-z0-9._@:+=/~!#$%&*?^|-]+$/;

/** An asserted end-user id when it is within bounds, else undefined. */
export function boundedUserId(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  return v.length > 0 && v.length <= MAX_USER_ID_CHARS && USER_ID.test(v) ? v : undefined;
}

/** Headers that assert an end user and are stripped unless the calling tenant may assert them. */
const OPEN_WEBUI_USER_HEADERS = [OPEN_WEBUI_USER_HEADER, 'x-openwebui-user-name', 'x-openwebui-user-email', 'x-openwebui-user-role', 'x-openwebui-chat-id'];

interface Table {
  tenants: readonly TenantSpec[];
  /** Every key's digest, with its tenant (index into `tenants`). */
  digests: { digest: Buffer; tenant: number }[];
  /** The same digests, in the same order, for the comparison. */
  keys: Buffer[];
  /** Every header some tenant asserts users with, and Open WebUI's. */
  userHeaders: readonly string[];
  byName: ReadonlyMap<string, TenantSpec>;
}

function tableOf(tenants: readonly TenantSpec[]): Table {
  const digests = tenants.flatMap((t, i) => t.keyDigests.map((digest) => ({ digest, tenant: i })));
  const userHeaders = new Set(OPEN_WEBUI_USER_HEADERS);
  for (const t of tenants) if (t.userHeader) userHeaders.add(t.userHeader);
  return { tenants, digests, keys: digests.map((k) => k.digest), userHeaders: [...userHeaders], byName: new Map(tenants.map((t) => [t.name, t])) };
}

export type Admission = { identity: CallIdentity; failure?: undefined } | { failure: AuthFailure; identity?: undefined };

export class Tenants {
  private table: Table;
  private file: string | undefined;
  private loadedText: string | undefined;
  private stopWatching: (() => void) | undefined;

  /**
   * `file` and its text, when the tenants come from a tenants file (for reloads); `accept` throws
   * for a reloaded file the rest of the configuration cannot take.
   */
  constructor(
    tenants: readonly TenantSpec[],
    file?: { path: string; text: string },
    private readonly accept: (specs: readonly TenantSpec[]) => void = () => {},
  ) {
    this.table = tableOf(tenants);
    this.file = file?.path;
    this.loadedText = file?.text;
  }

  /** Whether calls need a key. */
  get enabled(): boolean {
    return this.table.digests.length > 0;
  }

  /** The tenant names a `tenant` label may take (and `anonymous` when no key is configured). */
  get names(): string[] {
    return this.enabled ? this.table.tenants.map((t) => t.name) : [ANONYMOUS_TENANT];
  }

  /** One configured tenant by name (its rules, weight and priority). */
  spec(name: string): TenantSpec | undefined {
    return this.table.byName.get(name);
  }

  /** The configured tenants, as parsed. */
  get specs(): readonly TenantSpec[] {
    return this.table.tenants;
  }

  /**
   * The identity of a request by its `Authorization: Bearer` key or, where `xApiKey` is accepted
   * (Anthropic's Messages endpoint), its `x-api-key`; or why it has none.
   */
  admit(authorization: string | undefined, xApiKey?: string | string[]): Admission {
    if (!this.enabled) return { identity: { tenant: ANONYMOUS_TENANT } };
    const bearer = bearerKey(authorization);
    const header = xApiKey === undefined ? undefined : headerKey(xApiKey);
    if (bearer === undefined && header === undefined) return { failure: 'missing' };
    const t = this.table;
    let found = -1;
    let digest: Buffer | undefined;
    for (const candidate of [bearer, header]) {
      if (candidate === undefined) continue;
      const d = sha256(candidate);
      const i = this.match(t, d);
      if (i >= 0 && found < 0) {
        found = i;
        digest = d;
      }
    }
    if (found < 0) return { failure: 'invalid' };
    return { identity: { tenant: t.tenants[found]!.name, keyFingerprint: fingerprint(digest!) } };
  }

  /** The tenant index of digest `d`, compared with every key in constant time; -1 when none. */
  private match(t: Table, d: Buffer): number {
    const i = matchDigest(t.keys, d);
    return i < 0 ? -1 : t.digests[i]!.tenant;
  }

  /**
   * Adds the end user the request asserts, when its tenant may assert one, and removes every
   * user-asserting header the tenant may not use, so Ollama (or whatever sits behind it) never
   * takes an unvouched-for header as trusted. A permitted header is forwarded as sent.
   */
  assertUser(identity: CallIdentity, headers: IncomingHttpHeaders): void {
    const t = this.table;
    const spec = t.byName.get(identity.tenant);
    const allowed = spec?.userHeader;
    for (const h of t.userHeaders) {
      if (h === allowed) continue;
      if (allowed === OPEN_WEBUI_USER_HEADER && h.startsWith('x-openwebui-')) continue;
      if (headers[h] !== undefined) delete headers[h];
    }
    if (allowed !== undefined) {
      const user = boundedUserId(headers[allowed]);
      if (user !== undefined) identity.user = user;
    }
  }

  /**
   * Re-reads the tenants file; a file that does not parse leaves the current table and says why.
   * Returns whether the table changed.
   */
  reload(log: Logger, why: string): boolean {
    const file = this.file;
    if (file === undefined) return false;
    let text: string;
    try {
      if (statSync(file).size > MAX_TENANTS_FILE_BYTES) throw new Error(`larger than ${MAX_TENANTS_FILE_BYTES} bytes`);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      log.warn({ file, reason: (err as Error).message, trigger: why }, 'tenants file not reloaded: cannot read it; keeping the tenants in use');
      return false;
    }
    if (text === this.loadedText) return false;
    try {
      const specs = parseTenantsFile(text);
      this.accept(specs);
      this.table = tableOf(specs);
      this.loadedText = text;
      log.info({ file, tenants: specs.length, trigger: why, digest: createHash('sha256').update(text).digest('hex').slice(0, 8) }, 'tenants file reloaded');
      return true;
    } catch (err) {
      log.warn({ file, reason: (err as Error).message, trigger: why }, 'tenants file not reloaded: it is not valid; keeping the tenants in use');
      return false;
    }
  }

  /**
   * Reloads when the file changes: fs.watch on its folder (editors replace a file rather than
   * write it in place) and, where fs.watch reports nothing (network file systems, some container
   * mounts), a stat poll every `pollMs`.
   */
  watch(log: Logger, pollMs = 2000, onChange?: () => void): void {
    const file = this.file;
    if (file === undefined || this.stopWatching) return;
    let timer: NodeJS.Timeout | undefined;
    // Several events arrive for one save; one reload a moment after the last.
    const soon = (why: string) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        if (this.reload(log, why)) onChange?.();
      }, 100);
      timer.unref();
    };
    let watcher: FSWatcher | undefined;
    try {
      const base = path.basename(file);
      watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === base) soon('file changed');
      });
      watcher.on('error', () => watcher?.close());
    } catch {
      watcher = undefined;
    }
    watchFile(file, { interval: pollMs, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) soon('file changed (poll)');
    });
    this.stopWatching = () => {
      watcher?.close();
      unwatchFile(file);
      if (timer) clearTimeout(timer);
    };
  }

  close(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }
}
