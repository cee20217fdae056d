/**
 * What Ollama holds, as gauges: observed at collection time from the poller's latest result. After
 * a failed poll only `ollama_up 0` is reported; the other gauges are left out rather than stale.
 * The same result tells the recorder a loaded model's context window (`loadedContextLength`).
 */
import type { BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { ATTR_MODEL, ATTR_VERSION, type OllamaStateGauges } from './instruments';

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
  loaded?: LoadedModel[];
}

/**
 * The context window (tokens) of `model` (a normalised name) as Ollama's latest `/api/ps` reported
 * it; undefined when the model was not loaded at the last poll, the poll failed, Ollama is too old
 * to report it, or nothing is polled.
 */
export function loadedContextLength(state: OllamaState | undefined, model: string): number | undefined {
  if (!state?.up || !state.loaded) return undefined;
  for (const m of state.loaded) if (m.model === model) return m.contextLength;
  return undefined;
}

/** Registers the gauges' callback. `read` returns the latest poll result (undefined before the first). */
export function observeOllamaState(meter: Meter, g: OllamaStateGauges, read: () => OllamaState | undefined, now: () => number = Date.now): void {
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
    const state = read();
    if (!state) return;
    r.observe(g.up, state.up ? 1 : 0);
    if (!state.up) return;
    if (state.version !== undefined) r.observe(g.buildInfo, 1, { [ATTR_VERSION]: state.version });
    if (state.available) {
      r.observe(g.modelsAvailable, state.available.count);
      r.observe(g.modelsAvailableBytes, state.available.bytes);
    }
    if (state.loaded) {
      r.observe(g.modelsLoaded, state.loaded.length);
      for (const m of state.loaded) {
        const attrs = { [ATTR_MODEL]: m.model };
        r.observe(g.modelLoadedBytes, m.bytes, attrs);
        r.observe(g.modelVramBytes, m.vramBytes, attrs);
        if (m.bytes > 0) r.observe(g.modelVramRatio, m.vramBytes / m.bytes, attrs);
        if (m.expiresAtMs !== undefined) r.observe(g.modelUnloadSeconds, Math.max(0, (m.expiresAtMs - now()) / 1000), attrs);
      }
    }
  }, all);
}
