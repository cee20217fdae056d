import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeExpositions } from '../../otel/exposition-merge';

const A = `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{process_pid="1"} 1

# HELP reqs_total Requests.
# TYPE reqs_total counter
reqs_total{model="a",status="200"} 3
reqs_total{model="b",status="200"} 1

# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{model="a",le="0.1"} 1
lat_seconds_bucket{model="a",le="+Inf"} 3
lat_seconds_sum{model="a"} 0.5
lat_seconds_count{model="a"} 3

# HELP in_flight In flight.
# TYPE in_flight gauge
in_flight{model="a"} 2
`;

const B = `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{process_pid="2"} 1

# HELP reqs_total Requests.
# TYPE reqs_total counter
reqs_total{status="200",model="a"} 4
reqs_total{model="c \\"q\\"",status="500"} 2

# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{model="a",le="0.1"} 2
lat_seconds_bucket{model="a",le="+Inf"} 2
lat_seconds_sum{model="a"} 0.25
lat_seconds_count{model="a"} 2

# HELP in_flight In flight.
# TYPE in_flight gauge
in_flight{model="a"} 1
`;

const value = (text: string, head: string) => {
  const line = text.split('\n').find((l) => l.startsWith(head + ' '));
  return line === undefined ? undefined : Number(line.slice(head.length + 1));
};

describe('merging the workers’ expositions', () => {
  it('adds counters, histogram buckets, sums and counts, and gauges, series by series whatever the label order', () => {
    const m = mergeExpositions([{ text: A }, { text: B }]);
    assert.equal(value(m, 'reqs_total{model="a",status="200"}'), 7);
    assert.equal(value(m, 'reqs_total{model="b",status="200"}'), 1);
    assert.equal(value(m, 'reqs_total{model="c \\"q\\"",status="500"}'), 2);
    assert.equal(value(m, 'lat_seconds_bucket{model="a",le="0.1"}'), 3);
    assert.equal(value(m, 'lat_seconds_bucket{model="a",le="+Inf"}'), 5);
    assert.equal(value(m, 'lat_seconds_sum{model="a"}'), 0.75);
    assert.equal(value(m, 'lat_seconds_count{model="a"}'), 5);
    assert.equal(value(m, 'in_flight{model="a"}'), 3);
  });

  it('keeps one target_info, each family declared once, in the order first seen', () => {
    const m = mergeExpositions([{ text: A }, { text: B }]);
    assert.equal(m.split('\n').filter((l) => l.startsWith('target_info')).length, 1);
    assert.match(m, /target_info\{process_pid="1"\} 1/);
    const types = m.split('\n').filter((l) => l.startsWith('# TYPE'));
    assert.deepEqual(
      types.map((l) => l.split(' ')[2]),
      ['target_info', 'reqs_total', 'lat_seconds', 'in_flight'],
    );
    // A histogram series' lines stay together, buckets before sum and count.
    const lat = m.split('\n').filter((l) => l.startsWith('lat_seconds'));
    assert.deepEqual(
      lat.map((l) => l.split('{')[0]),
      ['lat_seconds_bucket', 'lat_seconds_bucket', 'lat_seconds_sum', 'lat_seconds_count'],
    );
  });

  it('counts what an exited worker counted, but not its gauges', () => {
    const m = mergeExpositions([{ text: A }, { text: B, countersOnly: true }]);
    assert.equal(value(m, 'reqs_total{model="a",status="200"}'), 7);
    assert.equal(value(m, 'lat_seconds_count{model="a"}'), 5);
    assert.equal(value(m, 'in_flight{model="a"}'), 2);
  });

  it('is the identity on one exposition (every sample kept)', () => {
    const m = mergeExpositions([{ text: A }]);
    const samples = (t: string) =>
      t
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .sort();
    assert.deepEqual(samples(m), samples(A));
  });
});
