/**
 * The OpenMetrics rendering and the exemplars' merge, as text: which Accept headers get it, what
 * changes from the classic format, where an exemplar lands, and which carried exemplar wins.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXEMPLARS_COMMENT, mergeExemplars, type Exemplar } from '../../otel/exemplars';
import { toOpenMetrics, wantsOpenMetrics } from '../../otel/openmetrics';

const T1 = '4bf92f3577b34da6a3ce929d0e0e4736';
const T2 = '0af7651916cd43dd8448eb211c80319c';
const S = '00f067aa0ba902b7';

describe('wantsOpenMetrics', () => {
  it("takes Prometheus's Accept, and refuses the classic text, a zero weight, a wildcard or nothing", () => {
    assert.equal(
      wantsOpenMetrics('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'),
      true,
    );
    assert.equal(wantsOpenMetrics('text/plain;version=0.0.4'), false);
    assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0'), false);
    assert.equal(wantsOpenMetrics('text/plain, application/openmetrics-text;q=0.5'), false);
    assert.equal(wantsOpenMetrics('*/*'), false);
    assert.equal(wantsOpenMetrics(undefined), false);
  });
});

describe('toOpenMetrics', () => {
  const classic = [
    '# HELP ollama_requests_total Requests "counted" once.',
    '# TYPE ollama_requests_total counter',
    'ollama_requests_total{model="m",endpoint="/api/chat"} 3',
    '',
    '# HELP ollama_response_seconds Wall time.',
    '# TYPE ollama_response_seconds histogram',
    'ollama_response_seconds_bucket{model="m",endpoint="/api/chat",le="0.5"} 1',
    'ollama_response_seconds_bucket{model="m",endpoint="/api/chat",le="+Inf"} 3',
    'ollama_response_seconds_sum{model="m",endpoint="/api/chat"} 4',
    'ollama_response_seconds_count{model="m",endpoint="/api/chat"} 3',
    '',
    `${EXEMPLARS_COMMENT}[]`,
    '',
  ].join('\n');
  const ex = new Map<string, Exemplar>([
    // The store sorts labels; the exposition need not.
    [`ollama_response_seconds_bucket{endpoint="/api/chat",model="m"}\u0000+Inf`, { traceId: T1, spanId: S, value: 2.5, at: 1_700_000_000_123 }],
    [`ollama_requests_total{endpoint="/api/chat",model="m"}\u0000`, { traceId: T2, spanId: S, value: 1, at: 1_700_000_000_000 }],
  ]);
  const om = toOpenMetrics(classic, ex).split('\n');

  it("names a counter's family without _total, escapes HELP's quotes, drops blank lines and comments, ends with # EOF", () => {
    assert.ok(om.includes('# TYPE ollama_requests counter'));
    assert.ok(om.includes('# HELP ollama_requests Requests \\"counted\\" once.'));
    assert.ok(!om.slice(0, -1).includes(''));
    assert.ok(!om.some((l) => l.startsWith(EXEMPLARS_COMMENT.trim())));
    assert.deepEqual(om.slice(-2), ['# EOF', '']);
  });

  it('appends each exemplar to its own bucket or counter line only', () => {
    assert.ok(om.includes(`ollama_response_seconds_bucket{model="m",endpoint="/api/chat",le="+Inf"} 3 # {trace_id="${T1}",span_id="${S}"} 2.5 1700000000.123`));
    assert.ok(om.includes('ollama_response_seconds_bucket{model="m",endpoint="/api/chat",le="0.5"} 1'));
    assert.ok(om.includes(`ollama_requests_total{model="m",endpoint="/api/chat"} 3 # {trace_id="${T2}",span_id="${S}"} 1 1700000000.000`));
    assert.equal(om.filter((l) => l.includes('trace_id')).length, 2);
  });
});

describe('mergeExemplars', () => {
  const piece = (rows: unknown) => `x 1\n${EXEMPLARS_COMMENT}${JSON.stringify(rows)}\n`;
  it('keeps the newest exemplar of each bucket, whichever piece carried it', () => {
    const merged = mergeExemplars([piece([['k\u0000+Inf', T1, S, 1, 200]]), piece([['k\u0000+Inf', T2, S, 2, 100]]), piece([['k\u00000.5', T2, S, 0.1, 50]])]);
    assert.equal(merged.get('k\u0000+Inf')?.traceId, T1);
    assert.equal(merged.get('k\u00000.5')?.traceId, T2);
  });
  it('skips what is not a well-formed exemplar: bad JSON, short rows, ids that are not hex of their length', () => {
    const merged = mergeExemplars([
      `${EXEMPLARS_COMMENT}{not json`,
      piece([['a', T1, S, 1]]),
      piece([['b', 'x'.repeat(32), S, 1, 1]]),
      piece([['c', T1, 'short', 1, 1]]),
      piece([['d', `${T1}"} 1 2\nevil 1`, S, 1, 1]]),
    ]);
    assert.equal(merged.size, 0);
  });
});
