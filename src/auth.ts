/**
 * Access control. Ollama has no authentication of its own; with API keys configured, the gateway
 * admits only requests carrying `Authorization: Bearer <key>` (the form the OpenAI SDKs and
 * ollama-js send). Keys are compared as SHA-256 digests with a constant-time comparison, against
 * every configured key, so neither a key's length nor its prefix leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthFailure = 'missing' | 'invalid';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class BearerKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** Undefined when `authorization` holds one of the keys, else why not. */
  check(authorization: string | undefined): AuthFailure | undefined {
    const m = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return 'missing';
    const candidate = digest(m[1]!);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, candidate) || ok;
    return ok ? undefined : 'invalid';
  }
}
