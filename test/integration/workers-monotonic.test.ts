/**
 * GATEWAY_WORKERS=3 under traffic, while workers are killed (SIGKILL) and stopped (SIGSTOP, then
 * SIGCONT) at random during scrapes: across every pair of consecutive successful scrapes, no
 * counter and no histogram bucket, sum or count ever decreases (Prometheus would read a reset).
 *
 * A property test (fast-check) over the schedule of stops and kills; its first case is the one
 * that made a worker count twice: one worker stopped so the gather waits for it, another killed
 * after it answered. `MONOTONIC_RUNS` runs more schedules (default 2, about 20–30 s); e.g.
 * `MONOTONIC_RUNS=20 node --test .build/test/integration/workers-monotonic.test.js`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { FakeOllama } from '../helpers/fake-ollama';
import { runWorkers, type WorkersProcess } from '../helpers/process';
import { childPids } from '../helpers/procs';

const WORKERS = 3;
const RUNS = Number(process.env.MONOTONIC_RUNS ?? 2);

/** One step of the schedule: workers to stop, one to kill some time into the scrape, when to resume the stopped. */
interface Step {
  stop: number[];
  kill: number | null;
  killAfterMs: number;
  resumeAfterMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One call on a connection of its own, so the primary hands calls to every worker in turn; never throws. */
const chat = (port: number) =>
  new Promise<void>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/chat', method: 'POST', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.on('timeout', () => req.destroy());
    req.end(JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'hi' }] }));
  });

/** A scrape's text, or undefined when it failed (a 503, or its worker died): no pair is formed. */
const scrape = (port: number) =>
  new Promise<string | undefined>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(res.statusCode === 200 ? Buffer.concat(chunks).toString('utf8') : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });

/** Every counter and histogram sample (`_bucket`, `_sum`, `_count`) of an exposition, by name and labels. */
function monotonicSamples(text: string): Map<string, number> {
  const types = new Map<string, string>();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const head = line.slice(0, space);
    const brace = head.indexOf('{');
    const name = brace < 0 ? head : head.slice(0, brace);
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(name) ?? types.get(base);
    if (type !== 'counter' && type !== 'histogram') continue;
    const labels = brace < 0 ? [] : [...head.slice(brace + 1, -1).matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((m) => `${m[1]}=${m[2]}`).sort();
    out.set(`${name}{${labels.join(',')}}`, Number(line.slice(space + 1)));
  }
  return out;
}

describe('counters with several workers, as workers die and stall during scrapes', () => {
  let fake: FakeOllama;
  let w: WorkersProcess;
  let traffic = true;
  let load: Promise<void> = Promise.resolve();
  /**
   * After each successful scrape, in the order they completed: when it completed, and the highest
   * value of each sample in it and every scrape that completed before it.
   */
  const done: { at: number; highest: Map<string, number> }[] = [];
  let pairs = 0;

  before(async () => {
    fake = await new FakeOllama().start();
    w = await runWorkers(`127.0.0.1:${fake.port}`, WORKERS, { OLLAMA_POLL_INTERVAL_SECONDS: '0.5' });
    // Calls all along: each worker has counted something when it dies.
    load = Promise.all(
      Array.from({ length: 2 }, async () => {
        while (traffic) await chat(w.port);
      }),
    ).then(() => undefined);
  });
  after(async () => {
    traffic = false;
    await load;
    // Stopped workers would not take the SIGTERM.
    for (const pid of childPids(w.gw.child.pid!)) process.kill(pid, 'SIGCONT');
    await w.stop();
    await fake.close();
  });

  /**
   * A scrape, compared with every scrape that had completed when it started (as Prometheus's
   * consecutive scrapes are); returns the samples that decreased.
   */
  const checkedScrape = async (): Promise<string[]> => {
    const startedAt = performance.now();
    const text = await scrape(w.port);
    if (text === undefined) return [];
    const now = monotonicSamples(text);
    let before: Map<string, number> | undefined;
    for (const d of done) if (d.at < startedAt) before = d.highest;
    const went: string[] = [];
    if (before) {
      pairs++;
      for (const [key, value] of now) {
        const was = before.get(key);
        if (was !== undefined && value < was) went.push(`${key}: ${was} → ${value}`);
      }
    }
    const highest = new Map(done.at(-1)?.highest ?? []);
    for (const [key, value] of now) highest.set(key, Math.max(value, highest.get(key) ?? value));
    done.push({ at: performance.now(), highest });
    return went;
  };

  const workersBack = async () => {
    const end = Date.now() + 15_000;
    while (childPids(w.gw.child.pid!).length < WORKERS && Date.now() < end) await sleep(100);
    await sleep(300);
  };

  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };

  const run = async (step: Step): Promise<string[]> => {
    const pids = childPids(w.gw.child.pid!);
    const stopped = [...new Set(step.stop.map((i) => pids[i % pids.length]!))];
    for (const pid of stopped) signal(pid, 'SIGSTOP');
    const killing = step.kill === null ? Promise.resolve() : sleep(step.killAfterMs).then(() => signal(pids[step.kill! % pids.length]!, 'SIGKILL'));
    const resuming = sleep(step.resumeAfterMs).then(() => stopped.forEach((pid) => signal(pid, 'SIGCONT')));
    // Three scrapes on connections of their own: the primary hands them to different workers.
    const went = (await Promise.all([checkedScrape(), checkedScrape(), checkedScrape()])).flat();
    await Promise.all([killing, resuming]);
    // Then a scrape with every worker back: what a dead worker counted must still be there.
    await workersBack();
    went.push(...(await checkedScrape()));
    return went;
  };

  it('no counter, bucket, sum or count ever decreases between consecutive scrapes', { timeout: 60_000 + RUNS * 40_000 }, async () => {
    const step: fc.Arbitrary<Step> = fc.record({
      stop: fc.array(fc.nat(WORKERS - 1), { maxLength: 2 }),
      kill: fc.option(fc.nat(WORKERS - 1), { nil: null }),
      killAfterMs: fc.integer({ min: 0, max: 600 }),
      resumeAfterMs: fc.integer({ min: 0, max: 2600 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 3 }), async (steps) => {
        const went: string[] = [];
        for (const s of steps) went.push(...(await run(s)));
        assert.deepEqual([...new Set(went)].slice(0, 10), [], 'samples that decreased');
      }),
      {
        numRuns: RUNS,
        // Shrinking would replay schedules against a gateway whose workers have changed since.
        endOnFailure: true,
        examples: [
          [
            [
              // Worker 0 stopped (the gather waits for it), worker 1 killed once it has answered.
              { stop: [0], kill: 1, killAfterMs: 400, resumeAfterMs: 2500 },
              { stop: [1], kill: 2, killAfterMs: 400, resumeAfterMs: 2500 },
            ],
          ],
        ],
      },
    );
    assert.ok(pairs >= 2 * RUNS, `scrapes compared in pairs: ${pairs}`);
  });
});
