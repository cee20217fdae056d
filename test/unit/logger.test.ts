/**
 * The log's two formats: JSON lines, and one readable line per event for a terminal. Either way one
 * event is one line, whatever a field holds (a stack trace, a message with line breaks).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, prettyLine } from '../../src/logger';

function capture(): { sink: Writable; lines: () => string[] } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return { sink, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('LOG_FORMAT=pretty', () => {
  it('writes one readable line per event: time, level, message, then key=value', () => {
    const { sink, lines } = capture();
    const log = createLogger('info', sink, { format: 'pretty' });
    log.info({ listen: '127.0.0.1:8000', ollama: 'http://127.0.0.1:11434', traces: ['otlp', 'console'] }, 'gateway listening');
    const [line] = lines();
    assert.equal(lines().length, 1);
    assert.match(
      line,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}gateway listening listen=127\.0\.0\.1:8000 ollama=http:\/\/127\.0\.0\.1:11434 traces=\["otlp","console"\]$/,
    );
    assert.doesNotMatch(line, /service=|^\{/);
  });

  it('keeps a stack trace and a message with line breaks on their one line, quoted', () => {
    const { sink, lines } = capture();
    const log = createLogger('debug', sink, { format: 'pretty' });
    const err = new Error('boom');
    log.error({ error: 'two words', stack: err.stack }, 'request handling failed\nsecond line');
    log.debug({ empty: '', quote: 'a"b' }, 'done');
    const out = lines();
    assert.equal(out.length, 2, out.join('\n'));
    assert.match(out[0], / ERROR "request handling failed\\nsecond line" error="two words" stack="Error: boom\\n {4}at /);
    assert.match(out[1], / DEBUG done empty="" quote="a\\"b"$/);
  });

  it('auto with a destination that is not a terminal writes JSON', () => {
    const { sink, lines } = capture();
    createLogger('info', sink, { format: 'auto' }).info({ a: 1 }, 'hello');
    const entry = JSON.parse(lines()[0]) as Record<string, unknown>;
    assert.deepEqual([entry.level, entry.msg, entry.a], ['info', 'hello', 1]);
  });

  it('a line that is not JSON passes through as it is', () => {
    assert.equal(prettyLine('not json'), 'not json\n');
  });
});
