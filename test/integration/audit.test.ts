/**
 * The short variant of `npm run audit`: a seeded mix of every metered API family against two
 * scripted backends (one dies partway), and the gateway's `/metrics`, console API and access log
 * must each equal the upstream's ground truth, call for call and token for token
 * (test/helpers/audit/; what "equal" means for each client behaviour is at the top of books.ts).
 *
 * The first test holds the books to the truth for every case the gateway gets right today. The
 * cases it gets wrong are listed in KNOWN_DEFECTS: each is left out of the first test and has its
 * own test, marked `todo` while it is listed. Once a fix is merged, take its entry out of the list:
 * the first test then covers the case too, and its own test must pass.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runAudit, type AuditOptions } from '../helpers/audit/run';
import type { Behaviour } from '../helpers/audit/plan';

type Defect = 'close-at-final' | 'cached-tokens-in-log' | 'pipelining';

/** What the gateway gets wrong today (each with its test below). Empty it as the fixes land. */
const KNOWN_DEFECTS: readonly Defect[] = [];

const known = (d: Defect) => KNOWN_DEFECTS.includes(d);
const SEED = Number(process.env.AUDIT_SEED ?? 7);

async function balanced(opts: Omit<AuditOptions, 'workers' | 'seed'>): Promise<void> {
  const r = await runAudit({ seed: SEED, workers: 1, lanes: 4, clientTimeoutMs: 3000, logCached: !known('cached-tokens-in-log'), ...opts });
  assert.ok(r.ok, `the books do not balance (AUDIT_SEED=${SEED} replays it):\n${r.text}`);
}

describe(`audit of the books (seed ${SEED})`, { timeout: 120_000 }, () => {
  it('every API family, streamed and not, and every client behaviour but the known defects: the three books equal the truth', async () => {
    const behaviours: Behaviour[] = ['read', 'abort', 'retry'];
    if (!known('close-at-final')) behaviours.push('close-final');
    if (!known('pipelining')) behaviours.push('pipeline');
    // The second backend dies with nothing in flight: its refusals and the failover are audited; a
    // death that cuts streams at random moments is `npm run audit`'s.
    await balanced({ calls: 60, behaviours, backendDeath: 'quiet' });
  });

  it('a stream whose client closes at the final event, before the terminator, is a success', { todo: known('close-at-final') }, async () => {
    await balanced({ calls: 30, behaviours: ['close-final'], backendDeath: 'none' });
  });

  it("the access log carries each call's cached prompt tokens", { todo: known('cached-tokens-in-log') }, async () => {
    await balanced({ calls: 30, behaviours: ['read'], backendDeath: 'none', logCached: true });
  });

  it('pipelined calls are counted as what they were, and every pipelined client gets the end of its answer', { todo: known('pipelining') }, async () => {
    await balanced({ calls: 30, behaviours: ['pipeline'], backendDeath: 'none' });
  });
});
