/**
 * The fair queue's order of release: by weighted share of tokens across tenants, interactive before
 * batch, first-come within a tenant, and to whichever candidate backend frees. Timers and the clock
 * are the test's, so nothing here depends on timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairQueue, type FairQueueOptions, type Grant, type Refusal } from '../../src/scheduler/fair-queue';
import type { Priority, TenantPolicy } from '../../src/scheduler/tenant';

const tenant = (name: string, weight = 1, priority: Priority = 'interactive'): TenantPolicy => ({ name, weight, priority });

interface Call {
  id: string;
  grant?: Grant;
  refused?: Refusal;
  withdraw: () => void;
}

/** A queue with manual timers, and a log of which call was released in what order. */
function harness(opts: Partial<FairQueueOptions> & { slots?: FairQueueOptions['slots'] } = {}) {
  const timers = new Set<() => void>();
  const released: string[] = [];
  const q = new FairQueue({
    slots: new Map([['a', 1]]),
    maxWaiting: 1000,
    maxWaitMs: 30_000,
    now: () => 0,
    setTimer: (fn) => {
      timers.add(fn);
      return fn;
    },
    clearTimer: (t) => timers.delete(t as () => void),
    ...opts,
  });
  const ask = (id: string, t: TenantPolicy, candidates: readonly string[] = ['a']): Call => {
    const call: Call = { id, withdraw: () => {} };
    call.withdraw = q.enqueue(t, candidates, {
      onRelease: (g) => {
        call.grant = g;
        released.push(id);
      },
      onRefuse: (why) => (call.refused = why),
    });
    return call;
  };
  const fireTimers = () => {
    for (const fn of [...timers]) {
      timers.delete(fn);
      fn();
    }
  };
  return { q, ask, released, fireTimers };
}

describe('FairQueue', () => {
  it('takes a free slot at once, and holds calls beyond the slots', () => {
    const { q, ask, released } = harness({ slots: new Map([['a', 2]]) });
    ask('1', tenant('x'));
    ask('2', tenant('x'));
    const third = ask('3', tenant('x'));
    assert.deepEqual(released, ['1', '2']);
    assert.equal(third.grant, undefined);
    assert.equal(q.depth, 1);
    assert.deepEqual(q.snapshot(), [{ tenant: 'x', priority: 'interactive', waiting: 1, running: 2 }]);
  });

  it("tells each tenant's longest wait now and its last call's wait, on the queue's own clock", () => {
    let now = 1000;
    const { q, ask } = harness({ now: () => now });
    const first = ask('1', tenant('x'));
    assert.deepEqual([...q.waits()], [['x', { longestMs: 0, last: { waitedMs: 0, agoMs: 0 } }]]);
    now = 1200;
    const second = ask('2', tenant('y'));
    now = 1500;
    ask('3', tenant('y'));
    now = 1700;
    assert.deepEqual(q.waits().get('y'), { longestMs: 500 }, 'the first of its waiting calls, 500 ms');
    first.grant!.slot.release(10);
    assert.equal(second.grant!.waitedMs, 500);
    now = 1900;
    assert.deepEqual(q.waits().get('y'), { longestMs: 400, last: { waitedMs: 500, agoMs: 200 } });
    assert.deepEqual(q.waits().get('x'), { longestMs: 0, last: { waitedMs: 0, agoMs: 900 } });
  });

  it('releases a tenant that has had little before one that has had much, not first-come', () => {
    const { ask, released } = harness();
    const first = ask('batch-0', tenant('batch'));
    for (let i = 1; i <= 5; i++) ask(`batch-${i}`, tenant('batch'));
    ask('inter-0', tenant('inter'));
    first.grant!.slot.release(100);
    assert.deepEqual(released, ['batch-0', 'inter-0']);
  });

  it('is first-come across tenants with QUEUE_ORDER=fifo', () => {
    const { ask, released } = harness({ order: 'fifo' });
    const calls = [ask('batch-0', tenant('batch'))];
    for (let i = 1; i <= 3; i++) calls.push(ask(`batch-${i}`, tenant('batch')));
    calls.push(ask('inter-0', tenant('inter')));
    for (let i = 0; i < 4; i++) calls.find((c) => c.id === released.at(-1))!.grant!.slot.release(100);
    assert.deepEqual(released, ['batch-0', 'batch-1', 'batch-2', 'batch-3', 'inter-0']);
  });

  it('keeps first-come within a tenant', () => {
    const { ask, released } = harness();
    const calls = [ask('x-0', tenant('x'))];
    for (let i = 1; i <= 4; i++) calls.push(ask(`x-${i}`, tenant('x')));
    for (let i = 0; i < 4; i++) calls.find((c) => c.id === released.at(-1))!.grant!.slot.release(50);
    assert.deepEqual(released, ['x-0', 'x-1', 'x-2', 'x-3', 'x-4']);
  });

  it('shares the slots in proportion to weight when tokens per call are equal', () => {
    const { ask, released } = harness();
    const calls = new Map<string, Call>();
    const heavy = tenant('heavy', 3);
    const light = tenant('light', 1);
    const hold = ask('hold', tenant('other'));
    for (let i = 0; i < 40; i++) {
      calls.set(`h${i}`, ask(`h${i}`, heavy));
      calls.set(`l${i}`, ask(`l${i}`, light));
    }
    hold.grant!.slot.release(100);
    for (let i = 0; i < 39; i++) calls.get(released.at(-1)!)!.grant!.slot.release(100);
    const first40 = released.slice(1, 41);
    const heavyShare = first40.filter((id) => id.startsWith('h')).length;
    assert.equal(heavyShare, 30, `released: ${first40.join(' ')}`);
  });

  it('measures shares in tokens: a tenant whose calls are long gets fewer of them', () => {
    const { ask, released } = harness();
    const calls = new Map<string, Call>();
    const hold = ask('hold', tenant('other'));
    for (let i = 0; i < 30; i++) {
      calls.set(`long${i}`, ask(`long${i}`, tenant('long')));
      calls.set(`short${i}`, ask(`short${i}`, tenant('short')));
    }
    hold.grant!.slot.release(0);
    for (let i = 0; i < 29; i++) {
      const id = released.at(-1)!;
      calls.get(id)!.grant!.slot.release(id.startsWith('long') ? 1000 : 100);
    }
    const shorts = released.filter((id) => id.startsWith('short')).length;
    const longs = released.filter((id) => id.startsWith('long')).length;
    assert.ok(shorts >= 3 * longs, `short ${shorts}, long ${longs}`);
  });

  it('releases every interactive call before any batch call', () => {
    const { ask, released } = harness();
    const hold = ask('hold', tenant('other'));
    const calls = new Map<string, Call>();
    for (let i = 0; i < 3; i++) calls.set(`b${i}`, ask(`b${i}`, tenant('batch', 10, 'batch')));
    for (let i = 0; i < 3; i++) calls.set(`i${i}`, ask(`i${i}`, tenant('inter', 1, 'interactive')));
    hold.grant!.slot.release(0);
    for (let i = 0; i < 5; i++) calls.get(released.at(-1)!)!.grant!.slot.release(10);
    assert.deepEqual(released, ['hold', 'i0', 'i1', 'i2', 'b0', 'b1', 'b2']);
  });

  it('gives an idle tenant no credit beyond now: it rejoins level with the others', () => {
    const { ask, released } = harness();
    // `early` is served once, long ago, then goes quiet while `busy` is served many times.
    ask('early', tenant('early')).grant!.slot.release(10);
    let last = ask('busy-0', tenant('busy'));
    for (let i = 1; i < 20; i++) {
      const next = ask(`busy-${i}`, tenant('busy'));
      last.grant!.slot.release(100);
      last = next;
    }
    // Both now queue behind the running call: `early` goes first, but only once ahead.
    const e1 = ask('early-1', tenant('early'));
    ask('early-2', tenant('early'));
    ask('busy-20', tenant('busy'));
    last.grant!.slot.release(100);
    e1.grant!.slot.release(100);
    assert.deepEqual(released.slice(-2), ['early-1', 'busy-20']);
  });

  it('releases a call to the first of its candidate backends that frees, never to another', () => {
    const { ask, released } = harness({
      slots: new Map([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
    });
    const onA = ask('on-a', tenant('x'), ['a']);
    const onB = ask('on-b', tenant('x'), ['b']);
    const onC = ask('on-c', tenant('x'), ['c']);
    const either = ask('a-or-b', tenant('y'), ['a', 'b']);
    onC.grant!.slot.release(10);
    assert.equal(either.grant, undefined, 'a free slot at c is not one of its candidates');
    onB.grant!.slot.release(10);
    assert.equal((either.grant as Grant | undefined)?.backend, 'b');
    assert.deepEqual(released, ['on-a', 'on-b', 'on-c', 'a-or-b']);
    assert.equal(onA.grant!.backend, 'a');
  });

  it('passes over a tenant whose waiting calls cannot use the freed slot', () => {
    const { ask, released } = harness({
      slots: new Map([
        ['a', 1],
        ['b', 1],
      ]),
    });
    const onA = ask('hold-a', tenant('x'), ['a']);
    ask('hold-b', tenant('y'), ['b']);
    ask('x-wants-b', tenant('x'), ['b']);
    ask('z-wants-a', tenant('z'), ['a']);
    onA.grant!.slot.release(10);
    assert.deepEqual(released, ['hold-a', 'hold-b', 'z-wants-a']);
  });

  it('moves a slot with a call that fails over, freeing the first backend', () => {
    const { ask } = harness({
      slots: new Map([
        ['a', 1],
        ['b', 1],
      ]),
    });
    const first = ask('first', tenant('x'), ['a']);
    const waiting = ask('waiting', tenant('y'), ['a']);
    first.grant!.slot.moveTo('b');
    assert.equal(waiting.grant?.backend, 'a');
  });

  it('lets a client that leaves leave the queue', () => {
    const { q, ask, released } = harness();
    const running = ask('running', tenant('x'));
    const gone = ask('gone', tenant('y'));
    ask('stays', tenant('z'));
    gone.withdraw();
    assert.equal(q.depth, 1);
    running.grant!.slot.release(10);
    assert.deepEqual(released, ['running', 'stays']);
    assert.equal(gone.grant, undefined);
  });

  it('refuses at once past QUEUE_MAX_WAITING, and a call that waited too long', () => {
    const { q, ask, fireTimers } = harness({ maxWaiting: 2 });
    ask('running', tenant('x'));
    const w1 = ask('w1', tenant('x'));
    const w2 = ask('w2', tenant('y'));
    const over = ask('over', tenant('z'));
    assert.equal(over.refused, 'queue_full');
    assert.equal(w1.refused, undefined);
    fireTimers();
    assert.equal(w1.refused, 'queue_timeout');
    assert.equal(w2.refused, 'queue_timeout');
    assert.equal(q.depth, 0);
  });

  it('caps the calls running over all backends (MAX_CONCURRENT_REQUESTS)', () => {
    const { ask } = harness({
      slots: new Map([
        ['a', 2],
        ['b', 2],
      ]),
      maxRunning: 3,
    });
    const calls = ['1', '2', '3', '4'].map((id) => ask(id, tenant('x'), ['a', 'b']));
    assert.equal(calls.filter((c) => c.grant).length, 3);
    calls[0]!.grant!.slot.release(1);
    assert.ok(calls[3]!.grant);
  });

  it("never loses a tenant's waiting call when its previous call, released from the queue, finishes", () => {
    const { q, ask, released } = harness();
    const hold = ask('hold', tenant('x'));
    const y1 = ask('y1', tenant('y'));
    hold.grant!.slot.release(10);
    const y2 = ask('y2', tenant('y'));
    y1.grant!.slot.release(10);
    assert.deepEqual(released, ['hold', 'y1', 'y2']);
    assert.equal(q.depth, 0);
    assert.deepEqual(q.snapshot(), [{ tenant: 'y', priority: 'interactive', waiting: 0, running: 1 }]);
    y2.grant!.slot.release(10);
    assert.deepEqual(q.snapshot(), []);
  });

  it('releases a slot once however often the call says so', () => {
    const { ask } = harness({ slots: new Map([['a', 1]]) });
    const first = ask('first', tenant('x'));
    const second = ask('second', tenant('x'));
    const third = ask('third', tenant('x'));
    first.grant!.slot.release(1);
    first.grant!.slot.release(1);
    assert.ok(second.grant);
    assert.equal(third.grant, undefined);
  });
});
