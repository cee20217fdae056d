/**
 * Access control. Ollama has no authentication of its own; with API keys configured, the gateway
 * admits only requests carrying `Authorization: Bearer <key>` (the form the OpenAI SDKs and
 * ollama-js send) or, on the paths an Anthropic client calls (`anthropicKeyPath`), `x-api-key:
 * <key>` as well (Anthropic's own API-key header; an Anthropic SDK's `authToken`, as
 * `ANTHROPIC_AUTH_TOKEN`, goes as Bearer).
 * Keys are compared as SHA-256 digests with a constant-time comparison, against every configured
 * key, so neither a key's length nor its prefix leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthFailure = 'missing' | 'invalid';

/**
 * Whether an Anthropic client calls `path`, so that its `x-api-key` header is accepted there: the
 * Messages API and everything under it (`/v1/messages/count_tokens`, which Claude Code calls for
 * every `/context`, and `/v1/messages/batches…`), the models list (`/v1/models`, `/v1/models/<id>`,
 * which the Anthropic SDKs call with the same header) and the legacy `/v1/complete`. Ollama serves
 * `/v1/messages` and `/v1/models…` (`server/routes.go`); the others get Ollama's own answer (a 404)
 * rather than a 401 for a key the client did send.
 */
export function anthropicKeyPath(path: string): boolean {
  return path === '/v1/messages' || path.startsWith('/v1/messages/') || path === '/v1/models' || path.startsWith('/v1/models/') || path === '/v1/complete';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The index in `digests` of the SHA-256 digest `d`, or -1: every digest is compared, in constant
 * time, whichever matches, so timing tells neither whether nor which key matched.
 */
export function matchDigest(digests: readonly Buffer[], d: Buffer): number {
  let found = -1;
  for (let i = 0; i < digests.length; i++) {
    const eq = timingSafeEqual(digests[i]!, d);
    found = eq && found < 0 ? i : found;
  }
  return found;
}

/** The key of an `Authorization: Bearer <key>` header, or undefined when it has none. */
export function bearerKey(authorization: string | undefined): string | undefined {
  const m = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m ? m[1] : undefined;
}

/** The key of an `x-api-key: <key>` header (one value, no white space), or undefined. */
export function headerKey(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const key = value.trim();
  return /^\S+$/.test(key) ? key : undefined;
}

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
    const key = bearerKey(authorization);
    if (key === undefined) return 'missing';
    return this.matches(key) ? undefined : 'invalid';
  }

  /**
   * Undefined when `authorization` (as `Bearer <key>`) or `xApiKey` holds one of the keys, else why
   * not: `missing` when neither header carries a key at all. Both are compared whenever present.
   */
  checkEither(authorization: string | undefined, xApiKey: string | string[] | undefined): AuthFailure | undefined {
    const bearer = bearerKey(authorization);
    const header = headerKey(xApiKey);
    if (bearer === undefined && header === undefined) return 'missing';
    const viaBearer = bearer !== undefined && this.matches(bearer);
    const viaHeader = header !== undefined && this.matches(header);
    return viaBearer || viaHeader ? undefined : 'invalid';
  }

  /**
   * The configured key a request that passed `check`/`checkEither` presented (Bearer first), for
   * telling tenants apart; undefined when it presented none of them.
   */
  keyOf(authorization: string | undefined, xApiKey?: string | string[]): string | undefined {
    const bearer = bearerKey(authorization);
    if (bearer !== undefined && this.matches(bearer)) return bearer;
    const header = headerKey(xApiKey);
    return header !== undefined && this.matches(header) ? header : undefined;
  }

  /** Whether `candidate` is one of the keys, compared with every key in constant time. */
  private matches(candidate: string): boolean {
    return matchDigest(this.digests, digest(candidate)) >= 0;
  }
}
