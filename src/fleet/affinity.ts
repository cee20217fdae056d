/**
 * Conversation affinity (ROUTING_AFFINITY=prefix): a call whose first messages are those of an
 * earlier call (the same model, system prompt and first user turn) goes where that call went, so
 * Ollama can reuse the prompt's KV cache on the next turn. The key is a hash; no text is kept.
 */
import { createHash } from 'node:crypto';

/** Most conversations remembered; the oldest is forgotten first. */
export const MAX_CONVERSATIONS = 10_000;

interface Message {
  role?: unknown;
  content?: unknown;
}

const asMessages = (v: unknown): Message[] => (Array.isArray(v) ? (v as Message[]).filter((m) => m !== null && typeof m === 'object') : []);

/**
 * The affinity key of a request body: model, system prompt and first user turn, hashed. Reads the
 * chat shapes (`messages` of Ollama, OpenAI and Anthropic with its top-level `system`, the
 * Responses API's `instructions` and `input`) and `/api/generate`'s `system` and `prompt`.
 * Undefined when the body has no turn to key on.
 */
export function affinityKey(model: string | undefined, body: Buffer): string | undefined {
  if (model === undefined) return undefined;
  let json: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    json = v as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const messages = asMessages(json.messages ?? json.input);
  const system = json.system ?? json.instructions ?? messages.find((m) => m.role === 'system' || m.role === 'developer')?.content;
  const firstUser = messages.find((m) => m.role === 'user')?.content ?? (typeof json.input === 'string' ? json.input : json.prompt);
  if (firstUser === undefined) return undefined;
  return createHash('sha256')
    .update(JSON.stringify([model, system ?? null, firstUser]))
    .digest('base64url')
    .slice(0, 22);
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
