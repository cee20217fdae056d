/**
 * The listings of several backends as one: `GET /api/tags`, `/api/ps` and `/v1/models` ask every
 * routable backend at once and answer the union. A model on several backends is listed once (the
 * first backend's entry, in OLLAMA_HOST order) with a `backends` field naming where it is; the
 * `X-Ollama-Backends` header names the backends whose answers are in the union.
 */
import { normalizeModelName } from '../request/model';
import type { Backend } from './backends';

/** The listing paths answered as a union with several backends. */
export const UNION_PATHS: ReadonlySet<string> = new Set(['/api/tags', '/api/ps', '/v1/models']);

/** The header naming the backends whose listings make up the answer. */
export const BACKENDS_HEADER = 'x-ollama-backends';

const UNION_TIMEOUT_MS = 10_000;

type Entry = Record<string, unknown>;

const entriesOf = (path: string, body: unknown): Entry[] => {
  const list = path === '/v1/models' ? (body as { data?: unknown })?.data : (body as { models?: unknown })?.models;
  return Array.isArray(list) ? (list as unknown[]).filter((e): e is Entry => e !== null && typeof e === 'object' && !Array.isArray(e)) : [];
};

const keyOf = (path: string, e: Entry): string => {
  const name = path === '/v1/models' ? e.id : (e.name ?? e.model);
  return typeof name === 'string' ? normalizeModelName(name) : JSON.stringify(e);
};

/**
 * Merges each backend's answer (`null` for one that failed) into one listing body, in the shape
 * of the path's own answer. Pure.
 */
export function mergeListings(path: string, answers: readonly { backend: string; body: unknown }[]): Record<string, unknown> {
  const merged = new Map<string, Entry & { backends: string[] }>();
  for (const { backend, body } of answers) {
    for (const e of entriesOf(path, body)) {
      const key = keyOf(path, e);
      const seen = merged.get(key);
      if (seen) {
        if (!seen.backends.includes(backend)) seen.backends.push(backend);
      } else merged.set(key, { ...e, backends: [backend] });
    }
  }
  const list = [...merged.values()];
  return path === '/v1/models' ? { object: 'list', data: list } : { models: list };
}

/** Asks every backend in `backends` for `path`; the answers that came, in their order. */
export async function gatherListings(path: string, backends: readonly Backend[]): Promise<{ backend: string; body: unknown }[]> {
  const answers = await Promise.all(
    backends.map(async (b) => {
      try {
        return { backend: b.name, body: await b.upstream.getJson(path, UNION_TIMEOUT_MS) };
      } catch {
        return undefined;
      }
    }),
  );
  return answers.filter((a): a is { backend: string; body: unknown } => a !== undefined);
}
