/**
 * What each Ollama holds, as gauges: observed at collection time from the poller's latest result.
 * After a failed poll of a backend only its `ollama_up 0` is reported; its other gauges are left
 * out rather than stale. The same result tells the recorder a loaded model's context window
 * (`loadedContextLength`) and the router where each model is warm.
 */
import type { Attributes, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { ATTR_BACKEND, ATTR_MODEL, ATTR_VERSION, type OllamaStateGauges } from './instruments';

export interface LoadedModel {
  /** Normalised model name (`llama3.2:latest`). */
  model: string;
  bytes: number;
  vramBytes: number;
  /** When Ollama will unload it (epoch ms), if known. */
  expiresAtMs?: number;
  /** The context window (tokens) its runner was started with (`/api/ps` `context_length`, Ollama ≥ 0.10). */
  contextLength?: number;
}

export interface OllamaState {
  up: boolean;
  version?: string;
  available?: { count: number; bytes: number };
  /** Names (normalised) of the models on disk (`/api/tags`). */
  models?: string[];
  /** Those of them that run on another host: listed with `remote_host` or `remote_model`. */
  remoteModels?: string[];
  /** Bounded (src/poller.ts): the first of them, when Ollama lists more than the gateway keeps. */
  loaded?: LoadedModel[];
  /** How many models `/api/ps` listed, kept or not. */
  loadedCount?: number;
}

/**
 * The latest poll of every backend, keyed by backend name (`host:port` as configured), in the
 * order of OLLAMA_HOST; a backend not yet polled is absent. Plain JSON data on purpose (no Map, no
 * class): it is relayed as it is between processes.
 */
export interface FleetState {
  backends: Record<string, OllamaState>;
}

/**
 * The context window (tokens) of `model` (a normalised name) as the latest `/api/ps` of `backend`
 * reported it (without `backend`, or when that one does not have it loaded, the first backend
 * that does); undefined when the model was not loaded at the last poll, the poll failed, Ollama is
 * too old to report it, or nothing is polled.
 */
export function loadedContextLength(state: FleetState | undefined, model: string, backend?: string): number | undefined {
  if (!state) return undefined;
  const inOne = (s: OllamaState | undefined): number | undefined => {
    if (!s?.up || !s.loaded) return undefined;
    for (const m of s.loaded) if (m.model === model) return m.contextLength;
    return undefined;
  };
  const preferred = backend === undefined ? undefined : inOne(state.backends[backend]);
  if (preferred !== undefined) return preferred;
  for (const s of Object.values(state.backends)) {
    const n = inOne(s);
    if (n !== undefined) return n;
  }
  return undefined;
}

/**
 * Whether `model` (a normalised name) runs on another host: a cloud name (the tag `cloud`, or one
 * ending in `-cloud`, as Ollama names its cloud models), or listed as remote by the latest
 * `/api/tags` of any backend. An answer that carries `remote_host` says so on its own.
 */
export function isRemoteModel(state: FleetState | undefined, model: string): boolean {
  const colon = model.lastIndexOf(':');
  const tag = colon === -1 ? '' : model.slice(colon + 1);
  if (tag === 'cloud' || tag.endsWith('-cloud')) return true;
  if (!state) return false;
  for (const s of Object.values(state.backends)) if (s.up && s.remoteModels?.includes(model)) return true;
  return false;
}

/**
 * Registers the gauges' callback. `read` returns the latest poll results (undefined before the
 * first). With `labelled`, every series carries `backend` (several backends); without, there is
 * one backend and its series are exactly those of a single Ollama.
 */
export function observeOllamaState(
  meter: Meter,
  g: OllamaStateGauges,
  read: () => FleetState | undefined,
  labelled: boolean,
  now: () => number = Date.now,
): void {
  const all: Observable[] = [
    g.up,
    g.buildInfo,
    g.modelsAvailable,
    g.modelsAvailableBytes,
    g.modelsLoaded,
    g.modelLoadedBytes,
    g.modelVramBytes,
    g.modelVramRatio,
    g.modelUnloadSeconds,
  ];
  meter.addBatchObservableCallback((r: BatchObservableResult) => {
    const fleet = read();
    if (!fleet) return;
    for (const [backend, state] of Object.entries(fleet.backends)) observeOne(r, g, state, labelled ? { [ATTR_BACKEND]: backend } : {}, now);
  }, all);
}

function observeOne(r: BatchObservableResult, g: OllamaStateGauges, state: OllamaState, base: Attributes, now: () => number): void {
  r.observe(g.up, state.up ? 1 : 0, base);
  if (!state.up) return;
  if (state.version !== undefined) r.observe(g.buildInfo, 1, { ...base, [ATTR_VERSION]: state.version });
  if (state.available) {
    r.observe(g.modelsAvailable, state.available.count, base);
    r.observe(g.modelsAvailableBytes, state.available.bytes, base);
  }
  if (state.loaded) {
    r.observe(g.modelsLoaded, state.loadedCount ?? state.loaded.length, base);
    for (const m of state.loaded) {
      const attrs = { ...base, [ATTR_MODEL]: m.model };
      r.observe(g.modelLoadedBytes, m.bytes, attrs);
      r.observe(g.modelVramBytes, m.vramBytes, attrs);
      if (m.bytes > 0) r.observe(g.modelVramRatio, m.vramBytes / m.bytes, attrs);
      if (m.expiresAtMs !== undefined) r.observe(g.modelUnloadSeconds, Math.max(0, (m.expiresAtMs - now()) / 1000), attrs);
    }
  }
}
