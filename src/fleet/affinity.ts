/**
 * Conversation affinity (ROUTING_AFFINITY=prefix): a call whose first messages are those of an
 * earlier call (the same model, system prompt and first user turn) goes where that call went, so
 * Ollama can reuse the prompt's KV cache on the next turn. The key is a hash; no text is kept.
 */
import { createHash, type Hash } from 'node:crypto';
import type { RequestReading, TextOrBytes } from '../request/read';

/** Most conversations remembered; the oldest is forgotten first. */
export const MAX_CONVERSATIONS = 10_000;

/** One input of the key: length-prefixed, so no two different inputs hash alike. */
function feed(hash: Hash, buf: Buffer, part: TextOrBytes | null): void {
  if (part === null) {
    hash.update('n');
    return;
  }
  if (typeof part === 'string') {
    const bytes = Buffer.from(part, 'utf8');
    hash.update(`s${bytes.length}:`);
    hash.update(bytes);
    return;
  }
  hash.update(`b${part.end - part.start}:`);
  hash.update(buf.subarray(part.start, part.end));
}

/**
 * The affinity key of a request: model, system prompt and first user turn, hashed. The inputs come
 * from the body as Ollama reads it (`RequestReading`: the chat shapes of every API family and
 * `/api/generate`'s `system` and `prompt`); a turn that is not text (an array of parts) is hashed as
 * its bytes, so nothing the client nests is ever walked or serialised. Undefined when the body has
 * no turn to key on.
 */
export function affinityKey(model: string | undefined, body: Buffer, reading: RequestReading): string | undefined {
  if (model === undefined || !reading.ok || reading.firstUser === null) return undefined;
  const hash = createHash('sha256');
  feed(hash, body, model);
  feed(hash, body, reading.system);
  feed(hash, body, reading.firstUser);
  return hash.digest('base64url').slice(0, 22);
}

/** Conversation key → the backend it went to, bounded (least recently used forgotten). */
export class AffinityTable {
  private readonly map = new Map<string, string>();

  constructor(private readonly max = MAX_CONVERSATIONS) {}

  get(key: string): string | undefined {
    const backend = this.map.get(key);
    if (backend !== undefined) {
      this.map.delete(key);
      this.map.set(key, backend);
    }
    return backend;
  }

  set(key: string, backend: string): void {
    this.map.delete(key);
    this.map.set(key, backend);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }

  get size(): number {
    return this.map.size;
  }
}
