/**
 * One audit run: two scripted backends, the real gateway process in front of them (with
 * `--workers`, several workers, one of which is killed mid-run), the script's calls on parallel
 * lanes, one backend dying halfway, then the books read and compared with the ground truth.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { runWorkers, type WorkersProcess } from '../process';
import { childPids } from '../procs';
import { sleep } from '../wait';
import { getCapped, samples } from '../fuzz/metrics';
import { compare, consoleCall, expect, isCallLine, logCall, METRIC_NAMES, table, type Books, type Expected, type Row } from './books';
import { pipeline, send, type Seen } from './clients';
import { makePlan, type Attempt, type Behaviour, type PlannedCall } from './plan';
import { ScriptedOllama, Truth } from './upstream';

export interface AuditOptions {
  calls: number;
  seed: number;
  /** GATEWAY_WORKERS; with more than 1, one worker is killed with SIGKILL mid-run. */
  workers: number;
  /** Calls at once (default 6). */
  lanes?: number;
  behaviours?: readonly Behaviour[];
  /** Whether the upstreams report cached prompt tokens (default true). */
  cached?: boolean;
  /**
   * When the second backend dies: `mid` (default) in the middle of the traffic, cutting its streams;
   * `quiet` once nothing is in flight, so only its refusals (and the failover) are tested; `none`.
   */
  backendDeath?: 'mid' | 'quiet' | 'none';
  /** Whether the access log must carry cached tokens (default true). */
  logCached?: boolean;
  /** How long a client waits for the end of an answer (default 30 s). */
  clientTimeoutMs?: number;
}

export interface AuditResult {
  ok: boolean;
  /** The differences, grouped by the client's behaviour and the upstream's ending. */
  kinds: string[];
  rows: Row[];
  unmatched: string[];
  text: string;
  expected: Expected[];
}

/** The console keeps this many recent calls (`/console/api/v1/calls?limit=500`). */
const CONSOLE_RING = 500;
const HELD = 4;

export async function runAudit(opts: AuditOptions): Promise<AuditResult> {
  const t0 = performance.now();
  const plan = makePlan({ seed: opts.seed, calls: opts.calls, behaviours: opts.behaviours, cached: opts.cached });
  const killing = opts.workers > 1;
  const held = killing ? makeHeld(plan, opts.seed) : [];
  const all = [...plan, ...held];
  const byId = new Map<string, { call: PlannedCall; attempt: Attempt }>();
  for (const call of all) for (const attempt of call.attempts) byId.set(attempt.id, { call, attempt });

  const truth = new Truth();
  const a = await new ScriptedOllama('a', byId, truth).start();
  const b = await new ScriptedOllama('b', byId, truth).start();
  let gw: WorkersProcess | undefined;
  try {
    gw = await runWorkers(`${a.origin},${b.origin}`, opts.workers, {
      OLLAMA_POLL_INTERVAL_SECONDS: '1',
      LOG_LEVEL: 'info',
      UPSTREAM_IDLE_TIMEOUT_SECONDS: '10',
    });
    const seen = new Map<string, Seen>();
    const clientMs = opts.clientTimeoutMs ?? 30_000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const jobs = plan.filter((c) => c.pipelineRole !== 'second');
    const death = opts.backendDeath ?? 'mid';
    const deathAt = death === 'none' ? -1 : Math.floor(jobs.length * 0.4);
    const killAt = killing ? Math.floor(jobs.length * 0.7) : -1;
    let next = 0;
    let active = 0;
    let killed = false;
    let gate: Promise<void> | undefined;
    const runJob = async (call: PlannedCall) => {
      if (call.pipelineRole === 'first') {
        for (const s of await pipeline(gw!.port, call, plan[call.index + 1], clientMs)) seen.set(s.id, s);
        return;
      }
      for (const attempt of call.attempts) {
        const s = await send(gw!.port, agent, call, attempt, clientMs);
        seen.set(attempt.id, s);
        if (s.status >= 200 && s.status < 300) break;
      }
    };
    const lane = async (): Promise<void> => {
      for (;;) {
        if (gate) await gate;
        if (next >= jobs.length) return;
        const i = next++;
        if (i === deathAt && death === 'mid') void b.die();
        if (i === deathAt && death === 'quiet') {
          gate = (async () => {
            await waitFor(() => active === 0, 30_000);
            await b.die();
          })();
          await gate;
          gate = undefined;
        }
        if (i === killAt) {
          // The other lanes finish their calls and wait: the kill happens with only the held streams in flight.
          gate = (async () => {
            await waitFor(() => active === 0, 30_000);
            await killWorker(gw!, held, runJob);
            killed = true;
          })();
          await gate;
          gate = undefined;
        }
        active++;
        try {
          await runJob(jobs[i]);
        } finally {
          active--;
        }
      }
    };
    await Promise.all(Array.from({ length: opts.lanes ?? 6 }, lane));
    agent.destroy();

    // Settled: nothing in flight upstream, the books' last lines written (pino flushes every 500 ms).
    await waitFor(() => a.active + b.active === 0, 10_000);
    await sleep(1200);
    const books = await readBooks(
      gw,
      all.reduce((n, c) => n + c.attempts.length, 0),
      opts.logCached !== false,
    );

    const expected: Expected[] = [];
    for (const call of all) {
      for (const attempt of call.attempts) {
        const s = seen.get(attempt.id);
        if (!s && attempt !== call.attempts[0]) continue; // a retry not needed
        expected.push(expect(call, attempt.id, truth.byId.get(attempt.id), s, killed));
      }
    }
    const { rows, unmatched, kinds, ok } = compare(expected, books);
    // Not a book, but what a client must never see: an answer that neither ends nor breaks.
    const stuck = [...seen.values()].filter((s) => s.broken?.startsWith('no end'));
    rows.push({
      book: `clients whose answer neither ended nor broke (${clientMs / 1000} s)`,
      truth: '0',
      metrics: '·',
      console: '·',
      log: '·',
      diff: stuck.length ? `clients ${stuck.length}` : '',
    });
    for (const s of stuck)
      unmatched.unshift(`client: call ${s.id} (${describe(byId.get(s.id))}) got no end of its answer in ${clientMs / 1000} s (status ${s.status || 'none'})`);
    if (truth.strays.length)
      rows.push({
        book: 'requests that reached an upstream with no call of the script',
        truth: '0',
        metrics: '·',
        console: '·',
        log: '·',
        diff: `upstream ${truth.strays.length}`,
      });
    const head = `## Audit: seed ${opts.seed}, ${plan.length} calls${held.length ? ` + ${held.length} held across a worker kill` : ''}, ${opts.workers} worker(s), ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    const mix = summarise(all, expected);
    const text = [
      head,
      '',
      mix,
      '',
      table(rows),
      '',
      ...(kinds.length ? ['Differences by kind (book: calls × what the truth says: what the book holds instead):', '', ...kinds.map((k) => `- ${k}`), ''] : []),
      ...(unmatched.length ? ['Calls that do not match (the first of each book):', '', ...unmatched.map((u) => `- ${u}`)] : []),
      '',
    ].join('\n');
    return { ok: ok && stuck.length === 0 && truth.strays.length === 0, kinds, rows, unmatched, text, expected };
  } finally {
    await gw?.stop();
    await a.close();
    await b.close();
  }
}

function describe(p: { call: PlannedCall; attempt: Attempt } | undefined): string {
  return p
    ? `${p.call.family.endpoint} ${p.call.streamed ? 'stream' : 'whole'}, client ${p.call.behaviour}${p.call.pipelineRole ? ` (${p.call.pipelineRole})` : ''}, upstream ${p.attempt.ending}`
    : '?';
}

/** Slow streams that are in flight while a worker is killed. */
function makeHeld(plan: PlannedCall[], seed: number): PlannedCall[] {
  const streaming = makePlan({ seed: seed + 1, calls: 64, behaviours: ['read'] }).filter((c) => c.streamed);
  return streaming.slice(0, HELD).map((c, k) => {
    const index = plan.length + k;
    return { ...c, index, behaviour: 'held', attempts: [{ id: `${index}`, ending: 'complete' }], pieces: 30, gapMs: 80 };
  });
}

/**
 * Quiesced: scrapes once (as Prometheus would, so the workers' counts are gathered) and reads the
 * console once (as its open page polls, so the workers' histories are gathered), starts the held
 * streams, kills one worker.
 */
async function killWorker(gw: WorkersProcess, held: PlannedCall[], runJob: (c: PlannedCall) => Promise<void>): Promise<void> {
  await sleep(1200);
  await getCapped(gw.port, '/metrics', 64 << 20, 10_000);
  await getCapped(gw.port, '/console/api/v1/models?minutes=1', 64 << 20, 10_000);
  const running = held.map((c) => runJob(c));
  await sleep(600);
  const pids = childPids(gw.gw.child.pid!);
  if (pids.length > 0) process.kill(pids[0], 'SIGKILL');
  await Promise.all(running);
  // The primary forks a replacement; give it time to listen.
  await sleep(1500);
}

async function readBooks(gw: WorkersProcess, attempts: number, logMustCarryCached: boolean): Promise<Books> {
  const metricsText = (await getCapped(gw.port, '/metrics', 64 << 20, 15_000)).body;
  const metrics = samples(metricsText, METRIC_NAMES);
  const models = JSON.parse((await getCapped(gw.port, '/console/api/v1/models?minutes=60', 64 << 20, 15_000)).body || '{}') as {
    models?: {
      model: string;
      totals: { requests: number; errors: Record<string, number>; inputTokens: number; outputTokens: number; cachedTokens?: number };
    }[];
  };
  const calls = JSON.parse((await getCapped(gw.port, `/console/api/v1/calls?limit=${CONSOLE_RING}`, 64 << 20, 15_000)).body || '{}') as {
    calls?: Record<string, unknown>[];
  };
  const consoleModels = new Map<string, Books['consoleModels'] extends Map<string, infer V> ? V : never>();
  for (const m of models.models ?? []) consoleModels.set(m.model, m.totals);
  return {
    metrics,
    metricsCached: /^# TYPE ollama_tokens_cached_total /m.test(metricsText),
    consoleModels,
    consoleCalls: (calls.calls ?? []).map(consoleCall),
    consoleComplete: attempts <= CONSOLE_RING,
    log: gw.gw.lines.filter(isCallLine).map(logCall),
    logMustCarryCached,
  };
}

/** The mix that ran: per client behaviour and per how the books should hold it. */
function summarise(all: PlannedCall[], expected: Expected[]): string {
  const by = (f: (c: PlannedCall) => string) => {
    const m = new Map<string, number>();
    for (const c of all) m.set(f(c), (m.get(f(c)) ?? 0) + 1);
    return [...m]
      .sort()
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ');
  };
  const outcomes = new Map<string, number>();
  for (const e of expected) {
    const k = e.lost ? 'lost with the worker' : (e.reason ?? `ok ${e.status}`);
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  }
  return [
    `endpoints: ${by((c) => `${c.family.endpoint}${c.streamed ? ' (stream)' : ''}`)}`,
    `clients: ${by((c) => c.behaviour)}`,
    `ground truth: ${[...outcomes]
      .sort()
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ')}`,
  ].join('\n\n');
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await sleep(20);
}
