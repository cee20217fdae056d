/**
 * The short variant of `npm run fuzz`: ~2000 random and mutated requests over raw sockets against
 * the gateway process, then every book must balance (test/helpers/fuzz/): the process alive and
 * healthy, /metrics valid and small, nothing left in flight or buffered, every call that reached
 * Ollama counted and logged, nothing forwarded that must not be.
 *
 * The seed is random unless FUZZ_SEED is set; it is printed, and a failure names it, so
 * `FUZZ_SEED=<n>` (or `npm run fuzz -- --seed <n> --requests 2000`) replays the same traffic.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatReport, runFuzz } from '../helpers/fuzz';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : randomInt(0, 2 ** 32 - 1);
const requests = Number(process.env.FUZZ_REQUESTS ?? 2000);

describe(`hostile input fuzz (seed ${seed})`, { timeout: 120_000 }, () => {
  it(`survives ${requests} random and mutated requests, and every book balances`, async (t) => {
    t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays it)`);
    // Sending stops after 25 s whatever the count, so a gateway that answers nothing cannot make
    // this test hang; the books are judged on what was sent.
    const result = await runFuzz({ requests, seed, concurrency: 32, maxSeconds: 25, hugeEvery: 250, bigBodyEvery: 97 });
    const report = formatReport(result);
    for (const line of report.split('\n')) t.diagnostic(line);
    const off = result.books.filter((b) => !b.ok);
    assert.ok(result.sent >= Math.min(requests, 500), `only ${result.sent} of ${requests} requests were sent:\n${report}`);
    assert.deepEqual(
      off.map((b) => `${b.book}: expected ${b.expected}, got ${b.actual}`),
      [],
      `seed ${seed}: ${off.length} book(s) NOT BALANCED\n${report}`,
    );
  });
});
