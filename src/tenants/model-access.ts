/**
 * A tenant's model list beyond the LLM calls: the model management Ollama serves by name (show,
 * create, copy, delete, pull, push, and `GET /v1/models/{model}`) and the listings (`/api/tags`,
 * `/api/ps`, `/v1/models`). Without this, a tenant limited to `llama3.2` could delete every other
 * model, copy a forbidden model onto an allowed name and run it, or create one from it.
 *
 * The names are read as Ollama's handlers read them (`server/routes.go`, `server/create.go`):
 * `ShouldBindJSON` into the request struct (Go's decoder: keys matched without case, the last one
 * wins, the first JSON value only), then `cmp.Or(req.Model, req.Name)` (`copy`: `source` and
 * `destination`; `create`: also `from`). Pure.
 */
import { GO, goDecode, type GoType } from '../request/go-json';
import { checkedModelName, type ModelPattern } from './rules';

/** Whether `models` allows the model named `name` (as a body or a path gives it). */
export function allowedBy(models: readonly ModelPattern[], name: string): boolean {
  const m = checkedModelName(name);
  return models.some((p) => p.test(m));
}

/** A management request that names models: its method, and the body fields that name each model (first non-empty wins). */
interface Managed {
  method: string;
  names: readonly (readonly string[])[];
  shape: GoType;
}

function managed(method: string, ...names: (readonly string[])[]): Managed {
  return { method, names, shape: GO.struct(names.flat().map((f) => [f, GO.string] as const)) };
}

const MANAGED: ReadonlyMap<string, Managed> = new Map([
  ['/api/show', managed('POST', ['model', 'name'])],
  ['/api/create', managed('POST', ['model', 'name'], ['from'])],
  ['/api/copy', managed('POST', ['source'], ['destination'])],
  ['/api/delete', managed('DELETE', ['model', 'name'])],
  ['/api/pull', managed('POST', ['model', 'name'])],
  ['/api/push', managed('POST', ['model', 'name'])],
]);

/** `GET /v1/models/{model}`: Ollama's `RetrieveMiddleware` shows the model the path names. */
const RETRIEVE_PREFIX = '/v1/models/';

/** The listings a tenant with a model list sees filtered. */
export const LISTING_PATHS: ReadonlySet<string> = new Set(['/api/tags', '/api/ps', '/v1/models']);

/** Whether a request (method, normalised path) names models in its body. */
export function namesModelsInBody(method: string, path: string): boolean {
  return MANAGED.get(path)?.method === method;
}

/**
 * The model names a management body gives, as Ollama reads them (empty ones left out: Ollama
 * refuses those itself); undefined when Go's decoder refuses the body, so the gateway cannot be
 * sure what Ollama would read.
 */
export function modelsInBody(path: string, body: Buffer): string[] | undefined {
  const m = MANAGED.get(path);
  if (!m) return [];
  const decoded = goDecode<Record<string, string>>(body, m.shape);
  if (!decoded.ok) return undefined;
  const out: string[] = [];
  for (const group of m.names) {
    const name = group.map((f) => decoded.value[f] ?? '').find((v) => v !== '');
    if (name !== undefined) out.push(name);
  }
  return out;
}

/**
 * The model `GET /v1/models/{model}` names, as Go's router gives it to Ollama (the path
 * percent-decoded); undefined for another request, `false` for a path Go could not decode.
 */
export function retrievedModel(method: string, path: string): string | false | undefined {
  if ((method !== 'GET' && method !== 'HEAD') || !path.startsWith(RETRIEVE_PREFIX)) return undefined;
  const rest = path.slice(RETRIEVE_PREFIX.length);
  if (rest === '') return undefined;
  try {
    return decodeURIComponent(rest);
  } catch {
    return false;
  }
}

/** A listing body with only the entries of models in `models`; other fields kept. */
export function filterListing(path: string, body: unknown, models: readonly ModelPattern[]): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const key = path === '/v1/models' ? 'data' : 'models';
  const list = (body as Record<string, unknown>)[key];
  if (!Array.isArray(list)) return body;
  const kept = list.filter((e: unknown) => {
    if (e === null || typeof e !== 'object') return false;
    const entry = e as Record<string, unknown>;
    const name = path === '/v1/models' ? entry.id : (entry.name ?? entry.model);
    return typeof name === 'string' && allowedBy(models, name);
  });
  return { ...(body as Record<string, unknown>), [key]: kept };
}
