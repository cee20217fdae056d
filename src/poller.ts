/**
 * Polls each Ollama in the background for what it holds: its version (`/api/version`), the models
 * on disk (`/api/tags`) and the models loaded in memory (`/api/ps`). Never on the request path, and
 * never more than one poll in flight per backend: a backend's next poll is scheduled only when its
 * last one finished. A failed poll marks the backend down (fleet/health.ts).
 */
import { clipText, MAX_MODEL_NAME_CHARS } from '../otel/labels';
import type { FleetState, LoadedModel, OllamaState } from '../otel/state';
import type { Logger } from './logger';
import type { Upstream } from './proxy/upstream';
import { NOT_REACHABLE_YET, reachHint } from './reach-hint';
import { normalizeModelName } from './request/model';

const POLL_TIMEOUT_MS = 5000;

/** Most model names taken from the polls as served (Ollama's listings are not trusted to be small). */
const MAX_SERVED_NAMES = 4096;

/**
 * What one poll of a backend may contribute, whatever its listings hold (they may be up to the
 * 16 MiB cap on the gateway's own GETs): the names of at most MAX_LISTED_MODELS models on disk and
 * at most MAX_LOADED_MODELS loaded models are kept (the counts and total sizes cover every entry),
 * an entry whose name is longer than MAX_MODEL_NAME_CHARS is counted but not kept, and the version
 * is cut to MAX_VERSION_CHARS. Every scrape, console answer and worker relay reads this much.
 */
export const MAX_LISTED_MODELS = 4096;
export const MAX_LOADED_MODELS = 256;
export const MAX_VERSION_CHARS = 64;

interface TagsModel {
  name?: unknown;
  model?: unknown;
  size?: unknown;
  remote_host?: unknown;
  remote_model?: unknown;
}

interface PsModel extends TagsModel {
  size_vram?: unknown;
  expires_at?: unknown;
  context_length?: unknown;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const nameOf = (m: TagsModel): string => normalizeModelName(typeof m.name === 'string' ? m.name : typeof m.model === 'string' ? m.model : undefined);

const isRemote = (m: TagsModel): boolean =>
  (typeof m.remote_host === 'string' && m.remote_host !== '') || (typeof m.remote_model === 'string' && m.remote_model !== '');

/** A listed model's name when it is one that can be kept (see MAX_MODEL_NAME_CHARS), else undefined. */
function keptName(m: TagsModel): string | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const name = nameOf(m);
  return name.length > MAX_MODEL_NAME_CHARS ? undefined : name;
}

/**
 * `/api/tags` → count and total size on disk (of every entry), the names kept
 * (MAX_LISTED_MODELS), and those of the models that run on another host (`remote_host` /
 * `remote_model`, `api.ListModelResponse`; at most MAX_SERVED_NAMES).
 */
export function parseTags(body: unknown): { count: number; bytes: number; names: string[]; remote: string[] } {
  const models = (body as { models?: unknown })?.models;
  const list = Array.isArray(models) ? (models as TagsModel[]) : [];
  let bytes = 0;
  const names: string[] = [];
  const remote: string[] = [];
  for (const m of list) {
    bytes += num(m?.size);
    if (names.length >= MAX_LISTED_MODELS && remote.length >= MAX_SERVED_NAMES) continue;
    const name = keptName(m);
    if (name === undefined) continue;
    if (names.length < MAX_LISTED_MODELS) names.push(name);
    if (remote.length < MAX_SERVED_NAMES && isRemote(m)) remote.push(name);
  }
  return { count: list.length, bytes, names, remote };
}

/** A positive whole number of tokens, or undefined. */
const tokens = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);

/**
 * `/api/ps` → the loaded models with their memory, VRAM, unload time and context window
 * (`context_length`: the `num_ctx` the runner was started with; fixtures README §3.5, §9.1).
 */
export function parsePs(body: unknown): LoadedModel[] {
  const models = (body as { models?: unknown })?.models;
  const list = Array.isArray(models) ? (models as PsModel[]) : [];
  const loaded: LoadedModel[] = [];
  for (const m of list) {
    if (loaded.length >= MAX_LOADED_MODELS) break;
    const model = keptName(m);
    if (model === undefined) continue;
    // A date is some 30 characters; a longer string is none Date.parse needs to read.
    const expires = typeof m.expires_at === 'string' && m.expires_at.length <= 64 ? Date.parse(m.expires_at) : NaN;
    loaded.push({
      model,
      bytes: num(m.size),
      vramBytes: num(m.size_vram),
      expiresAtMs: Number.isFinite(expires) ? expires : undefined,
      contextLength: tokens(m.context_length),
    });
  }
  return loaded;
}

/** How many models `/api/ps` lists, all of them (parsePs keeps at most MAX_LOADED_MODELS). */
export function psCount(body: unknown): number {
  const models = (body as { models?: unknown })?.models;
  return Array.isArray(models) ? models.length : 0;
}

/** One backend the poller asks: its name (the key in `FleetState.backends`), connection and health. */
export interface PolledBackend {
  name: string;
  upstream: Upstream;
  /** Told each poll's outcome; a failed poll marks the backend down. */
  health?: { pollSucceeded(): void; unreachable(reason: string): void; readonly status: string };
  /** Cleared by a successful poll (a fresher account of what is loaded). */
  warmSincePoll?: Set<string>;
}

/** How soon a backend that is not up is polled again (at most the interval). */
const RETRY_DOWN_MS = 1000;

export class OllamaPoller {
  private state: FleetState | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  private readonly wasUp = new Map<string, boolean>();
  /** Per backend: resolves when its poll in flight (if any) is over. */
  private readonly current = new Map<string, Promise<void>>();

  constructor(
    private readonly backends: readonly PolledBackend[],
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** Told the models the backends serve (their union) after each successful poll. */
    private readonly onServedModels: (names: string[]) => void = () => {},
  ) {}

  /**
   * The latest result per backend (`{ backends: { [name]: OllamaState } }`, plain JSON data, in
   * the order of OLLAMA_HOST once each has been polled); undefined before the first poll finished.
   */
  get latest(): FleetState | undefined {
    return this.state;
  }

  /** Polls now, and then every interval after the previous poll of the same backend finished. */
  start(): void {
    for (const b of this.backends) this.pollOne(b).then(() => this.schedule(b));
  }

  /** Polls every backend once now (also used by tests); resolves when all are done. */
  async pollNow(): Promise<void> {
    await Promise.all(this.backends.map((b) => this.pollOne(b)));
  }

  /** Stops polling. A poll in flight is not waited for: closing the upstream agent ends it. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
  }

  private pollOne(b: PolledBackend): Promise<void> {
    const next = (this.current.get(b.name) ?? Promise.resolve()).then(() => this.poll(b));
    this.current.set(b.name, next);
    return next;
  }

  private schedule(b: PolledBackend): void {
    if (this.stopped) return;
    // A backend that is down is asked again soon: it is back in rotation as soon as it answers.
    const ms = b.health && b.health.status !== 'up' ? Math.min(this.intervalMs, RETRY_DOWN_MS) : this.intervalMs;
    const timer = setTimeout(() => {
      this.pollOne(b).then(() => this.schedule(b));
    }, ms);
    timer.unref();
    this.timers.set(b.name, timer);
  }

  private set(name: string, one: OllamaState): void {
    const backends: Record<string, OllamaState> = {};
    // Keyed in the configured order, whichever poll finished first.
    for (const b of this.backends) {
      const s = b.name === name ? one : this.state?.backends[b.name];
      if (s) backends[b.name] = s;
    }
    this.state = { backends };
  }

  private async poll(b: PolledBackend): Promise<void> {
    const origin = b.upstream.target.origin;
    const label = this.backends.length > 1 ? { backend: b.name } : {};
    try {
      const [version, tags, ps] = await Promise.all([
        b.upstream.getJson('/api/version', POLL_TIMEOUT_MS),
        b.upstream.getJson('/api/tags', POLL_TIMEOUT_MS),
        b.upstream.getJson('/api/ps', POLL_TIMEOUT_MS),
      ]);
      const available = parseTags(tags);
      const loaded = parsePs(ps);
      const v = (version as { version?: unknown })?.version;
      this.set(b.name, {
        up: true,
        version: typeof v === 'string' ? clipText(v, MAX_VERSION_CHARS) : undefined,
        available: { count: available.count, bytes: available.bytes },
        models: available.names,
        remoteModels: available.remote.length > 0 ? available.remote : undefined,
        loaded,
        loadedCount: psCount(ps),
      });
      b.warmSincePoll?.clear();
      b.health?.pollSucceeded();
      this.onServedModels(this.servedNames());
      if (this.wasUp.get(b.name) === false) this.log.info({ ollama: origin, ...label }, 'Ollama is reachable again');
      this.wasUp.set(b.name, true);
    } catch (err) {
      this.set(b.name, { up: false });
      b.health?.unreachable(`poll failed: ${(err as Error).message}`);
      const before = this.wasUp.get(b.name);
      const reason = (err as Error).message;
      // The first poll is the start-up check: one line, with the likely fix.
      if (before === undefined) {
        const t = b.upstream.target;
        const fix = reachHint(t.hostname, t.socketPath, (err as NodeJS.ErrnoException).code);
        this.log.warn({ ollama: origin, ...label, reason, fix }, NOT_REACHABLE_YET);
      } else if (before) {
        this.log.warn({ ollama: origin, ...label, reason }, 'polling Ollama failed; ollama_up is 0');
      }
      this.wasUp.set(b.name, false);
    }
  }

  /**
   * Every model any backend has on disk or loaded, at its last successful poll: at most
   * MAX_SERVED_NAMES of them, since each keeps its own `model` label whatever MAX_MODEL_LABELS says.
   */
  private servedNames(): string[] {
    const names: string[] = [];
    const add = (name: string) => {
      if (names.length < MAX_SERVED_NAMES) names.push(name);
    };
    for (const s of Object.values(this.state?.backends ?? {})) {
      if (!s.up) continue;
      for (const m of s.models ?? []) add(m);
      for (const m of s.loaded ?? []) add(m.model);
    }
    return names;
  }
}
