/** The router as a pure function (src/fleet/route.ts), and the health state machine (src/fleet/health.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendHealth, COOL_DOWN_FIRST_MS, DOWN_FIRST_MS, FIVE_XX_STRIKES, type HealthTransition } from '../../src/fleet/health';
import { managementRule, route, routeManagement, type BackendView } from '../../src/fleet/route';
import { mergeListings } from '../../src/fleet/union';

const view = (name: string, o: Partial<Omit<BackendView, 'loaded' | 'onDisk'>> & { loaded?: string[]; onDisk?: string[] } = {}): BackendView => ({
  name,
  routable: o.routable ?? true,
  inFlight: o.inFlight ?? 0,
  known: o.known ?? true,
  loaded: new Set(o.loaded ?? []),
  onDisk: new Set(o.onDisk ?? o.loaded ?? []),
  memoryBytes: o.memoryBytes ?? 0,
});

describe('route()', () => {
  const m = 'llama3.2:latest';

  it('prefers a backend with the model loaded, then the fewest in flight among those', () => {
    const r = route({ model: m }, [view('a', { onDisk: [m] }), view('b', { loaded: [m], inFlight: 3 }), view('c', { loaded: [m], inFlight: 1 })]);
    assert.deepEqual(r, { order: ['c', 'b', 'a'], reason: 'loaded', warm: true, equal: 2 });
  });

  it('else a backend with it on disk (fewest in flight), else the least busy; a cold choice is not warm', () => {
    assert.deepEqual(route({ model: m }, [view('a', { inFlight: 1, onDisk: [m] }), view('b', { onDisk: [m] }), view('c')]), {
      order: ['b', 'a', 'c'],
      reason: 'on_disk',
      warm: false,
      equal: 2,
    });
    assert.deepEqual(route({ model: m }, [view('a', { inFlight: 2 }), view('b', { inFlight: 1 })]), {
      order: ['b', 'a'],
      reason: 'none_has_it',
      warm: false,
      equal: 2,
    });
    assert.equal(route({ model: m }, [view('a', { known: false })])!.warm, undefined);
  });

  it('never picks a backend that is not routable while another is; with none routable it ranks them all', () => {
    assert.deepEqual(route({ model: m }, [view('a', { loaded: [m], routable: false }), view('b')]), {
      order: ['b'],
      reason: 'none_has_it',
      warm: false,
      equal: 1,
    });
    assert.deepEqual(route({ model: m }, [view('a', { loaded: [m], routable: false }), view('b', { routable: false })])!.order, ['a', 'b']);
  });

  it('rotates ties with spread, and leaves out backends already tried', () => {
    const vs = [view('a', { loaded: [m] }), view('b', { loaded: [m] }), view('c', { loaded: [m] })];
    assert.deepEqual(
      [0, 1, 2, 3].map((spread) => route({ model: m, spread }, vs)!.order[0]),
      ['a', 'b', 'c', 'a'],
    );
    assert.deepEqual(route({ model: m, exclude: new Set(['a']) }, vs)!.order, ['b', 'c']);
    assert.equal(route({ model: m, exclude: new Set(['a', 'b', 'c']) }, vs), undefined);
  });

  it('keeps a conversation on its backend while it is as warm as the best and not overloaded', () => {
    const vs = [view('a', { loaded: [m] }), view('b', { loaded: [m], inFlight: 2 })];
    assert.deepEqual(route({ model: m, affinity: 'b' }, vs), { order: ['b', 'a'], reason: 'affinity', warm: true, equal: 2 });
    assert.equal(route({ model: m, affinity: 'b' }, [view('a', { loaded: [m] }), view('b', { loaded: [m], inFlight: 5 })])!.reason, 'loaded', 'overloaded');
    assert.equal(route({ model: m, affinity: 'b' }, [view('a', { loaded: [m] }), view('b', { onDisk: [m] })])!.order[0], 'a', 'colder than the best');
    assert.equal(route({ model: m, affinity: 'b' }, [view('a', { loaded: [m] }), view('b', { loaded: [m], routable: false })])!.order[0], 'a', 'not routable');
  });
});

describe('routeManagement()', () => {
  it('pull: least memory in use; show/copy/delete/push: a backend with the model; the rest: the first routable', () => {
    const vs = [view('a', { memoryBytes: 9, routable: false }), view('b', { memoryBytes: 5 }), view('c', { memoryBytes: 1, onDisk: ['x:latest'] })];
    assert.equal(routeManagement(managementRule('POST', '/api/pull'), undefined, vs), 'c');
    assert.equal(routeManagement(managementRule('POST', '/api/show'), 'x:latest', vs), 'c');
    assert.equal(routeManagement(managementRule('DELETE', '/api/delete'), 'y:latest', vs), 'b', 'none has it: the first routable');
    assert.equal(routeManagement(managementRule('POST', '/api/create'), undefined, vs), 'b');
    assert.equal(managementRule('POST', '/api/blobs/sha256:00'), 'first');
  });
});

describe('mergeListings()', () => {
  it('lists a model on several backends once, with where it is, in list order', () => {
    const body = mergeListings('/api/tags', [
      { backend: 'a', body: { models: [{ name: 'llama3.2:latest', size: 1 }, { name: 'qwen3:8b' }] } },
      { backend: 'b', body: { models: [{ name: 'llama3.2' }, 'junk', null] } },
    ]);
    assert.deepEqual(body, {
      models: [
        { name: 'llama3.2:latest', size: 1, backends: ['a', 'b'] },
        { name: 'qwen3:8b', backends: ['a'] },
      ],
    });
    assert.deepEqual(mergeListings('/v1/models', [{ backend: 'a', body: { data: [{ id: 'm' }] } }]), { object: 'list', data: [{ id: 'm', backends: ['a'] }] });
  });
});

describe('BackendHealth', () => {
  const clock = () => {
    const c = { t: 1000, now: () => c.t };
    return c;
  };

  it('goes down at once when unreachable, gets one trial call after the hold-out, and is up again when it answers', () => {
    const c = clock();
    const seen: HealthTransition[] = [];
    const h = new BackendHealth((t) => seen.push(t), false, c.now);
    h.unreachable('refused');
    assert.equal(h.status, 'down');
    assert.equal(h.routable, false);
    c.t += DOWN_FIRST_MS;
    assert.equal(h.routable, true);
    assert.equal(h.beginCall(), true);
    assert.equal(h.routable, false, 'one trial at a time');
    h.endTrial();
    h.answered(200, true);
    assert.equal(h.status, 'up');
    assert.deepEqual(
      seen.map((t) => [t.from, t.to]),
      [
        ['up', 'down'],
        ['down', 'up'],
      ],
    );
  });

  it('is up again on a successful poll after being unreachable', () => {
    const h = new BackendHealth(() => {}, true);
    h.unreachable('poll failed');
    h.pollSucceeded();
    assert.equal(h.status, 'up');
  });

  it(`cools down after ${FIVE_XX_STRIKES} 5xx answers in a row, for longer each time, and needs a poll before its trial`, () => {
    const c = clock();
    const h = new BackendHealth(() => {}, true, c.now);
    h.answered(500, false);
    h.answered(200, false);
    for (let i = 0; i < FIVE_XX_STRIKES - 1; i++) h.answered(503, false);
    assert.equal(h.status, 'up', 'a success in between resets the count');
    h.answered(500, false);
    assert.equal(h.status, 'cooling');
    c.t += COOL_DOWN_FIRST_MS;
    assert.equal(h.routable, false, 'no poll yet');
    h.pollSucceeded();
    assert.equal(h.routable, true);
    const trial = h.beginCall();
    h.endTrial();
    h.answered(500, trial);
    assert.equal(h.status, 'cooling');
    h.pollSucceeded();
    c.t += COOL_DOWN_FIRST_MS;
    assert.equal(h.routable, false, 'the second cool-down is longer');
    c.t += COOL_DOWN_FIRST_MS;
    assert.equal(h.routable, true);
  });

  it('counts a call it took and reset as a strike, as a 5xx: one is not enough, a run of them is, and a trial one at once', () => {
    const c = clock();
    const seen: HealthTransition[] = [];
    const h = new BackendHealth((t) => seen.push(t), false, c.now);
    h.failedCall('got no answer (reset)', false);
    assert.equal(h.status, 'up', 'one reset is no proof');
    h.answered(200, false);
    for (let i = 0; i < FIVE_XX_STRIKES - 1; i++) h.failedCall('got no answer (reset)', false);
    assert.equal(h.status, 'up', 'a success in between resets the count');
    h.answered(502, false);
    assert.equal(h.status, 'cooling', 'resets and 5xx answers count together');
    assert.equal(seen.at(-1)!.reason, `${FIVE_XX_STRIKES} calls in a row failed; the last was answered with HTTP 502`);
    c.t += COOL_DOWN_FIRST_MS;
    const trial = h.beginCall();
    assert.equal(trial, true);
    h.endTrial();
    h.failedCall('got no answer (reset)', trial);
    assert.equal(h.status, 'cooling');
    assert.equal(h.routable, false, 'held out again');
    assert.equal(seen.length, 1, 'still cooling: no new transition');
  });
});
