/**
 * The short variant of `npm run fuzz -- --backends`: three scripted backends answer the gateway's
 * polls, the listings and the LLM calls with structured hostile JSON (depth, key counts, string
 * sizes, numeric edge cases) and broken framing, while clients call through the gateway process
 * with `ROUTING_AFFINITY=prefix`; then the process must be alive with nothing on stderr, `/healthz`
 * 200, `/metrics` valid for promtool, and nothing in flight.
 *
 * The seed is random unless FUZZ_SEED is set; it is printed, and a failure names it.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatBackendReport, runBackendFuzz } from '../helpers/fuzz/backends';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : randomInt(0, 2 ** 32 - 1);
const requests = Number(process.env.FUZZ_BACKEND_REQUESTS ?? 300);

describe(`hostile-backend fuzz (seed ${seed})`, { timeout: 120_000 }, () => {
  it(`survives ${requests} client requests against backends that answer hostile JSON and broken framing`, async (t) => {
    t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays it)`);
    const result = await runBackendFuzz({ seed, requests, backends: 3, concurrency: 8, maxSeconds: 30 });
    const report = formatBackendReport(result);
    for (const line of report.split('\n')) t.diagnostic(line);
    assert.ok(result.sent >= Math.min(requests, 100), `only ${result.sent} of ${requests} requests were sent:\n${report}`);
    const off = result.books.filter((b) => !b.ok);
    assert.deepEqual(
      off.map((b) => `${b.book}: expected ${b.expected}, got ${b.actual}`),
      [],
      `seed ${seed}: ${off.length} book(s) NOT BALANCED\n${report}`,
    );
  });
});
