/**
 * The pieces behind a cheap, never-decreasing scrape: the primary's book of the workers' metrics
 * (a worker's counts move from live to retired in one step, so they are in every merge exactly
 * once), the floors that keep a merged series from going below what it was last written as, and
 * the paced rendering that every concurrent scrape shares.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeExpositions } from '../../otel/exposition-merge';
import { PacedRendering } from '../../otel/pacing';
import { MetricsBook } from '../../src/cluster/primary';
import { sample } from '../helpers/gateway';

const piece = (requests: number, inFlight: number, sum: number) => `# HELP reqs_total Requests.
# TYPE reqs_total counter
reqs_total{model="a"} ${requests}

# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{model="a",le="+Inf"} ${requests}
lat_seconds_sum{model="a"} ${sum}
lat_seconds_count{model="a"} ${requests}

# HELP in_flight In flight.
# TYPE in_flight gauge
in_flight{model="a"} ${inFlight}
`;

describe("the primary's book of the workers' metrics", () => {
  it('counts a worker that answered and then exited exactly once: as live, then as retired', () => {
    const book = new MetricsBook();
    book.report(0, piece(3, 1, 0.3));
    book.report(1, piece(5, 2, 0.5));
    const before = book.merged();
    assert.equal(sample(before, 'reqs_total', { model: 'a' }), 8);
    assert.equal(sample(before, 'in_flight', { model: 'a' }), 3);
    // Worker 1 exits (during a gather, say): its counts stay, its gauges go.
    book.retire(1);
    const during = book.merged();
    assert.equal(sample(during, 'reqs_total', { model: 'a' }), 8);
    assert.equal(sample(during, 'lat_seconds_count', { model: 'a' }), 8);
    assert.equal(sample(during, 'in_flight', { model: 'a' }), 1);
    // Its replacement starts from nothing; a second exit of the slot adds only the new worker's.
    book.report(1, piece(2, 0, 0.2));
    assert.equal(sample(book.merged(), 'reqs_total', { model: 'a' }), 10);
    book.retire(1);
    book.retire(1);
    assert.equal(sample(book.merged(), 'reqs_total', { model: 'a' }), 10);
  });

  it('never writes a counter or histogram series below its last value; gauges go where they are', () => {
    const floors = new Map<string, number>();
    const first = mergeExpositions([{ text: piece(4, 3, 0.30000000000000004) }], floors);
    assert.equal(sample(first, 'lat_seconds_sum', { model: 'a' }), 0.30000000000000004);
    // The same counts summed in another order can come out a digit lower.
    const second = mergeExpositions([{ text: piece(4, 1, 0.3) }], floors);
    assert.equal(sample(second, 'lat_seconds_sum', { model: 'a' }), 0.30000000000000004);
    assert.equal(sample(second, 'reqs_total', { model: 'a' }), 4);
    assert.equal(sample(second, 'in_flight', { model: 'a' }), 1);
    const third = mergeExpositions([{ text: piece(6, 0, 0.7) }], floors);
    assert.equal(sample(third, 'lat_seconds_sum', { model: 'a' }), 0.7);
    assert.equal(sample(third, 'reqs_total', { model: 'a' }), 6);
  });
});

describe('a paced rendering', () => {
  /** A rendering whose cost is what the test says, on a clock the test owns. */
  function rig(costMs: number) {
    let clock = 0;
    let renders = 0;
    const release: (() => void)[] = [];
    const paced = new PacedRendering<number>(
      async () => {
        const n = ++renders;
        await new Promise<void>((r) => release.push(r));
        return { value: n, costMs };
      },
      () => clock,
    );
    const finish = async () => {
      while (release.length === 0) await new Promise((r) => setImmediate(r));
      release.shift()!();
    };
    return { paced, finish, renders: () => renders, advance: (ms: number) => (clock += ms) };
  }

  it('gives every caller that comes before the rendering starts the same one', async () => {
    const r = rig(0);
    const all = [r.paced.get(), r.paced.get(), r.paced.get()];
    await r.finish();
    assert.deepEqual(await Promise.all(all), [1, 1, 1]);
    assert.equal(r.renders(), 1);
  });

  it('renders afresh for a caller that came while a rendering was under way (it may have read already)', async () => {
    const r = rig(0);
    const first = r.paced.get();
    await new Promise((res) => setImmediate(res));
    assert.equal(r.renders(), 1, 'the first has started');
    const second = [r.paced.get(), r.paced.get()];
    await r.finish();
    assert.equal(await first, 1);
    await r.finish();
    assert.deepEqual(await Promise.all(second), [2, 2], 'the later callers share the next one');
    assert.equal(r.renders(), 2);
  });

  it('starts the next rendering no sooner than PACE_FACTOR times the cost of the last after it', async () => {
    const r = rig(5);
    const first = r.paced.get();
    await r.finish();
    assert.equal(await first, 1);
    // The clock stands still: the next rendering waits (for 20 ms of this clock) however often it is asked.
    const next = r.paced.get();
    for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 5));
    assert.equal(r.renders(), 1, 'not yet');
    r.advance(20);
    await r.finish();
    assert.equal(await next, 2);
  });
});
