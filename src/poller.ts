/**
 * Polls Ollama in the background for what it holds: its version (`/api/version`), the models on
 * disk (`/api/tags`) and the models loaded in memory (`/api/ps`). Never on the request path, and
 * never more than one poll in flight: the next poll is scheduled only when the last one finished.
 */
import type { LoadedModel, OllamaState } from '../otel/state';
import type { Logger } from './logger';
import type { Upstream } from './proxy/upstream';
import { normalizeModelName } from './request/model';

const POLL_TIMEOUT_MS = 5000;

interface TagsModel {
  name?: unknown;
  model?: unknown;
  size?: unknown;
}

interface PsModel extends TagsModel {
  size_vram?: unknown;
  expires_at?: unknown;
  context_length?: unknown;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const nameOf = (m: TagsModel): string => normalizeModelName(typeof m.name === 'string' ? m.name : typeof m.model === 'string' ? m.model : undefined);

/** `/api/tags` → count and total size on disk, and the names. */
export function parseTags(body: unknown): { count: number; bytes: number; names: string[] } {
  const models = (body as { models?: unknown })?.models;
  const list = Array.isArray(models) ? (models as TagsModel[]) : [];
  return { count: list.length, bytes: list.reduce((n, m) => n + num(m.size), 0), names: list.map(nameOf) };
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
  return list.map((m) => {
    const expires = typeof m.expires_at === 'string' ? Date.parse(m.expires_at) : NaN;
    return {
      model: nameOf(m),
      bytes: num(m.size),
      vramBytes: num(m.size_vram),
      expiresAtMs: Number.isFinite(expires) ? expires : undefined,
      contextLength: tokens(m.context_length),
    };
  });
}

export class OllamaPoller {
  private state: OllamaState | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private wasUp: boolean | undefined;
  /** Resolves when the poll in flight (if any) is over. */
  private current: Promise<void> = Promise.resolve();

  constructor(
    private readonly upstream: Upstream,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** Told the models Ollama serves after each successful poll. */
    private readonly onServedModels: (names: string[]) => void = () => {},
  ) {}

  /** The latest result; undefined before the first poll finished. */
  get latest(): OllamaState | undefined {
    return this.state;
  }

  /** Polls now, and then every interval after the previous poll finished. */
  start(): void {
    this.pollNow().then(() => this.schedule());
  }

  /** Polls once now (also used by tests); resolves when done. */
  pollNow(): Promise<void> {
    this.current = this.current.then(() => this.poll());
    return this.current;
  }

  /** Stops polling. A poll in flight is not waited for: closing the upstream agent ends it. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.pollNow().then(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const [version, tags, ps] = await Promise.all([
        this.upstream.getJson('/api/version', POLL_TIMEOUT_MS),
        this.upstream.getJson('/api/tags', POLL_TIMEOUT_MS),
        this.upstream.getJson('/api/ps', POLL_TIMEOUT_MS),
      ]);
      const available = parseTags(tags);
      const loaded = parsePs(ps);
      const v = (version as { version?: unknown })?.version;
      this.state = { up: true, version: typeof v === 'string' ? v : undefined, available: { count: available.count, bytes: available.bytes }, loaded };
      this.onServedModels([...available.names, ...loaded.map((m) => m.model)]);
      if (this.wasUp === false) this.log.info({ ollama: this.upstream.target.origin }, 'Ollama is reachable again');
      this.wasUp = true;
    } catch (err) {
      this.state = { up: false };
      if (this.wasUp !== false) {
        this.log.warn({ ollama: this.upstream.target.origin, reason: (err as Error).message }, 'polling Ollama failed; ollama_up is 0');
      }
      this.wasUp = false;
    }
  }
}
