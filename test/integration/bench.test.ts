/**
 * The short variant of `npm run bench`: every scenario against the fake directly, through the
 * gateway, the traced gateway and the gateway with two workers, for a second to four each. It checks that the benchmark
 * runs and that the gateway serves every workload without an error; it asserts no timing (the
 * figures are reported by the full benchmark, compared as ratios within one run).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

const RUN = path.resolve(__dirname, '..', '..', 'bench', 'run.js');

describe('npm run bench (short variant)', () => {
  it('runs every scenario through the gateway without errors and writes its report', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-'));
    try {
      const out = path.join(dir, 'quick.json');
      const r = spawnSync(process.execPath, [RUN, '--quick', '--out', out], { encoding: 'utf8', timeout: 240_000 });
      assert.equal(r.status, 0, `bench exited ${r.status}: ${r.stderr.slice(-2000)}`);
      assert.match(r.stdout, /\| scenario \| target \| req\/s \|/);
      // Every performance target is reported, measured or not.
      assert.match(r.stdout, /\| S1 gateway CPU\/request vs 1\.3 × bare Node proxy \|/);
      assert.match(r.stdout, /\| S5 gateway-workers event-loop delay p99 \| [\d.]+ ms \|/);
      const report = JSON.parse(readFileSync(out, 'utf8')) as {
        summary: { scenario: string; target: string; errors: number; rps: number; cpuUsPerRequest?: number }[];
      };
      for (const scenario of ['S1', 'S2', 'S3', 'S4', 'S5', 'S6']) {
        for (const target of ['direct', 'gateway', 'gateway-traced', 'gateway-workers']) {
          const row = report.summary.find((x) => x.scenario === scenario && x.target === target);
          assert.ok(row, `${scenario} ${target} measured`);
          assert.equal(row.errors, 0, `${scenario} ${target} had errors`);
          assert.ok(row.rps > 0);
          if (target !== 'direct') assert.ok((row.cpuUsPerRequest ?? 0) > 0, `${scenario} ${target}: CPU measured`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
