/**
 * The short variant of `npm run bench:fairness`: a small flood from a batch tenant and a few calls
 * from an interactive one, through the gateway in front of a generating fake. It asserts order,
 * never timing: with the fair queue at most the calls already on their way to a freed slot reach
 * Ollama between an interactive call's send and its start; first-come makes each wait behind the
 * flood queued before it. Each run's slot utilisation is computed from the time calls held the fake's
 * slots, which the gateway never exceeds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

const BENCH = path.resolve(__dirname, '..', '..', 'bench', 'fairness.js');

interface Run {
  key: 'fifo' | 'fair' | 'fair-batch-class';
  mode: string;
  overtaken: number[];
  busySlotSeconds: number;
  availableSlotSeconds: number;
  utilisation: number;
  maxConcurrent: number;
  errors: number;
}

interface Report {
  slots: number;
  batchQueued: number;
  results: Run[];
}

describe('npm run bench:fairness (short variant)', () => {
  it('lets the interactive tenant pass the batch flood with the fair queue, and not first-come', () => {
    const r = spawnSync(process.execPath, [BENCH, '--quick', '--json'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `bench exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Report;
    const runs = (key: Run['key']) => report.results.filter((run) => run.key === key);
    const [fifo, fair, classes] = [runs('fifo'), runs('fair'), runs('fair-batch-class')];
    for (const mode of [fifo, fair, classes]) assert.ok(mode.length >= 1, 'every mode ran');
    for (const run of report.results) {
      assert.equal(run.errors, 0, `${run.mode}: errors`);
      // The gateway never sends the fake more than its slots, so their busy time fits in the span.
      assert.ok(run.maxConcurrent <= report.slots, `${run.mode}: ${run.maxConcurrent} calls at once on ${report.slots} slots`);
      assert.ok(run.utilisation > 0 && run.utilisation <= 1, `${run.mode}: busy ${run.busySlotSeconds} of ${run.availableSlotSeconds} slot-seconds`);
    }
    // First-come: every interactive call waits for the flood queued ahead of it.
    for (const n of fifo.flatMap((run) => run.overtaken)) assert.ok(n >= report.batchQueued - report.slots, `first-come: overtaken by ${n}`);
    // Fair: the next free slot is the interactive call's. "Overtaken" counts from the client's send,
    // so a batch call released while the interactive one was still on its way in may count: at most
    // one per slot, against the whole flood first-come.
    for (const n of [...fair, ...classes].flatMap((run) => run.overtaken)) assert.ok(n <= report.slots, `fair: overtaken by ${n}`);
  });
});
