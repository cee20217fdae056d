/**
 * The configured Ollama servers (OLLAMA_HOST, in order): for each, its connection (`Upstream`), its
 * health, the LLM calls this gateway has at it, and the models it served since its last poll. The
 * poller's plain-data state (`FleetState`) says what each holds; this registry adds what only this
 * process knows, and asks `route()` which backend a call goes to.
 */
import type { BackendLoad } from '../../otel/sdk';
import type { BackendRef } from '../../otel/recorder';
import type { FleetState } from '../../otel/state';
import { backendName, type UpstreamTarget } from '../config';
import type { Logger } from '../logger';
import { Upstream } from '../proxy/upstream';
import { AffinityTable } from './affinity';
import { BackendHealth } from './health';
import { route, type BackendView, type RouteChoice } from './route';

export interface Backend {
  /** `host:port` as configured (a Unix socket's path): the `backend` label and `X-Ollama-Backend` value. */
  readonly name: string;
  readonly target: UpstreamTarget;
  readonly upstream: Upstream;
  readonly health: BackendHealth;
  readonly ref: BackendRef;
  /** LLM calls this gateway has sent to it and not yet finished. */
  inFlight: number;
  /** Models it served since its last poll: loaded now, whatever that poll said. */
  readonly warmSincePoll: Set<string>;
}

const EMPTY: ReadonlySet<string> = new Set();

/** What one poll of a backend says, in the shape routing reads: made once per poll, not per call. */
interface PolledView {
  loaded: ReadonlySet<string>;
  onDisk: ReadonlySet<string>;
  memoryBytes: number;
}

export class Fleet {
  readonly backends: readonly Backend[];
  private readonly byName: ReadonlyMap<string, Backend>;
  private readonly affinity = new AffinityTable();
  private spread = 0;
  /** Routing's view of each poll result, by the result (a new poll is a new object). */
  private readonly polledViews = new WeakMap<object, PolledView>();
  /** The poller's latest state; set once the poller exists. */
  readState: () => FleetState | undefined = () => undefined;

  constructor(targets: readonly UpstreamTarget[], idleTimeoutMs: number, pseudonym: string, log: Logger, polled: boolean) {
    this.backends = targets.map((target) => {
      const name = backendName(target);
      const health = new BackendHealth((t) => {
        // One backend is not routed: it gets every call whatever its health, as it always did.
        if (targets.length === 1) return;
        const entry = {
          backend: name,
          from: t.from,
          to: t.to,
          reason: t.reason,
          retry_at: t.retryAt === undefined ? undefined : new Date(t.retryAt).toISOString(),
        };
        if (t.to === 'up') log.info(entry, 'backend is back in rotation');
        else log.warn(entry, t.to === 'down' ? 'backend is down; calls go elsewhere' : 'backend fails calls; cooling down, calls go elsewhere');
      }, polled);
      return {
        name,
        target,
        upstream: new Upstream(target, idleTimeoutMs, pseudonym),
        health,
        ref: { name, address: target.socketPath ?? target.hostname, port: target.port },
        inFlight: 0,
        warmSincePoll: new Set<string>(),
      };
    });
    this.byName = new Map(this.backends.map((b) => [b.name, b]));
    this.only = { order: [this.backends[0]!.name], reason: 'none_has_it', warm: undefined, equal: 1 };
  }

  /** The choice when there is one backend. */
  private readonly only: RouteChoice;

  /** More than one backend: calls are routed and series carry `backend`. */
  get routed(): boolean {
    return this.backends.length > 1;
  }

  get(name: string): Backend | undefined {
    return this.byName.get(name);
  }

  /** What `route()` sees of each backend now. */
  views(): BackendView[] {
    const state = this.readState();
    return this.backends.map((b) => {
      const s = state?.backends[b.name];
      const known = s?.up === true;
      let polled = known ? this.polledViews.get(s) : undefined;
      if (known && polled === undefined) {
        polled = {
          loaded: new Set((s.loaded ?? []).map((m) => m.model)),
          onDisk: s.models ? new Set(s.models) : EMPTY,
          memoryBytes: (s.loaded ?? []).reduce((n, m) => n + m.bytes, 0),
        };
        this.polledViews.set(s, polled);
      }
      let loaded = polled?.loaded ?? EMPTY;
      if (b.warmSincePoll.size > 0) {
        const both = new Set(loaded);
        for (const m of b.warmSincePoll) both.add(m);
        loaded = both;
      }
      return {
        name: b.name,
        routable: b.health.routable,
        inFlight: b.inFlight,
        known: known || b.warmSincePoll.size > 0,
        loaded,
        onDisk: polled?.onDisk ?? EMPTY,
        memoryBytes: polled?.memoryBytes ?? 0,
      };
    });
  }

  /** Ranks the backends for a call to `model`; `tried` are excluded (a failover). */
  choose(model: string | undefined, affinityKey: string | undefined, tried?: ReadonlySet<string>): RouteChoice | undefined {
    // One backend is not routed: every call goes to it (nothing records the reason).
    if (!this.routed && tried === undefined) return this.only;
    const affinity = affinityKey === undefined ? undefined : this.affinity.get(affinityKey);
    return route({ model, affinity, exclude: tried, spread: this.spread++ }, this.views());
  }

  /** Ranks only `only` (a backend named by X-Ollama-Backend): the reason says how warm it is. */
  chooseAmong(only: readonly Backend[], model: string | undefined): RouteChoice | undefined {
    const names = new Set(only.map((b) => b.name));
    return route(
      { model },
      this.views().filter((v) => names.has(v.name)),
    );
  }

  /**
   * A poll result another process made (the polling worker's, relayed): each backend's health
   * learns of it as if this process had polled.
   */
  observePolls(state: FleetState): void {
    for (const b of this.backends) {
      const s = state.backends[b.name];
      if (!s) continue;
      if (s.up) {
        b.warmSincePoll.clear();
        b.health.pollSucceeded();
      } else b.health.unreachable('poll failed');
    }
  }

  /** The conversation `key` went to `backend`. */
  remember(key: string, backend: string): void {
    this.affinity.set(key, backend);
  }

  /** The routable backends, in list order (all of them when none is). */
  healthy(): Backend[] {
    const up = this.backends.filter((b) => b.health.routable);
    return up.length > 0 ? up : [...this.backends];
  }

  /** For `ollama_backend_in_flight` and `ollama_backend_healthy`. */
  load(): BackendLoad[] {
    return this.backends.map((b) => ({ name: b.name, inFlight: b.inFlight, healthy: b.health.status === 'up' }));
  }

  close(): void {
    for (const b of this.backends) b.upstream.close();
  }
}
