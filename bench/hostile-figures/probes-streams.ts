/** Probes 9, 10 and 11: a pass-through with `Connection: close`, a client that stops reading for 3 s, stack traces after expected network errors. */
import type { FakeOllama } from '../../test/helpers/fake-ollama';
import { fixture } from '../../test/helpers/fixtures';
import { httpReq, rawExchange, type Resp } from './clients';
import { CHAT, isStackLine, mb, MiB, secs, sleep, type Probe, type Row } from './common';
import { alive, crashText, startGw, statusOf, stopGw, type Gw } from './gateway';
import { grew, scrape } from './metrics';

/** 9. Pass-through with `Connection: close`. */
export const probeConnectionClose: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin);
  try {
    const r = await rawExchange(gw.port, `GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`, {
      timeoutMs: 10_000,
      waitClose: true,
    });
    const resp = r.parsed ? `${r.parsed.status}, Connection: ${r.parsed.headers.connection ?? '(none)'}` : 'no response';
    const held =
      r.responseMs === undefined
        ? 'response never completed'
        : r.closed && r.closedMs !== undefined
          ? `${secs(r.closedMs - r.responseMs)}`
          : `still open after ${secs(10_000 - r.responseMs)} (cap)`;
    rows.push({ figure: 'response', value: resp });
    rows.push({ figure: 'socket held open after the response', value: held });
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 10. A client that stops reading a multi-MB stream for 3 s (UPSTREAM_IDLE_TIMEOUT_SECONDS=1). */
export const probeSlowReader: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '1' });
  try {
    const lines = fixture('chat-stream.ndjson').toString('utf8').trimEnd().split('\n');
    const last = lines[lines.length - 1];
    const word = 'x'.repeat(1000);
    const line = `{"model":"llama3.2","created_at":"2026-11-25T19:20:14.171201928Z","message":{"role":"assistant","content":"${word}"},"done":false}\n`;
    const count = Math.ceil((40 * MiB) / line.length);
    const body = Buffer.from(line.repeat(count) + last + '\n');
    fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body, chunking: { kind: 'every', size: 64 * 1024 } }, '/api/chat');
    const before = await scrape(gw);
    const result = await readPausing(gw);
    await sleep(500);
    const after = gw.exited ? undefined : await scrape(gw);
    rows.push({
      figure: 'client got everything?',
      value: `${result.complete && result.bytes === body.length ? 'yes' : 'NO'}: ${mb(result.bytes)} of ${mb(body.length)}, ${result.complete ? 'ended normally' : `cut (${result.error})`} after ${secs(result.ms)}${result.status ? ` (status ${result.status})` : ''}`,
    });
    rows.push({ figure: 'recorded status', value: grew(before, after, 'ollama_requests_total', 'status', { endpoint: '/api/chat' }) });
    rows.push({ figure: 'recorded error reason', value: grew(before, after, 'ollama_request_errors_total', 'reason', { endpoint: '/api/chat' }) });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** POST /api/chat, then stop reading for 3 s after the first chunk; what arrived in the end, and when. */
function readPausing(gw: Gw): Promise<Resp> {
  return httpReq(gw.port, {
    method: 'POST',
    path: '/api/chat',
    body: CHAT(),
    timeoutMs: 90_000,
    keepBody: false,
    onResponse: (res) => {
      let paused = false;
      res.on('data', () => {
        if (!paused) {
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), 3000);
        }
      });
    },
  });
}

/** 11. Stack traces on stderr after expected network errors. */
export const probeStackTraces: Probe = async (fake) => {
  const rows: Row[] = [];
  let gw = await startGw(fake.origin);
  try {
    const cases = stackCases(fake);
    for (const c of cases) {
      if (gw.exited) gw = await startGw(fake.origin);
      const errBefore = gw.stderr.length;
      const nonJsonBefore = gw.nonJson;
      const linesBefore = gw.lines.length;
      await c.run(gw);
      await sleep(700);
      const newErr = gw.stderr.slice(errBefore).split('\n');
      const stack = newErr.filter(isStackLine);
      const head = newErr.find((l) => /Error|ERR_/.test(l));
      const stdoutStacks = gw.lines.slice(linesBefore).filter((l) => /\\n\s+at /.test(l)).length;
      const nonJson = gw.nonJson - nonJsonBefore;
      const ok = await alive(gw);
      rows.push({
        figure: c.name,
        value:
          `${stack.length} stack-trace line(s) on stderr${head ? ` (${head.trim().slice(0, 100)})` : ''}` +
          `${stdoutStacks ? `; ${stdoutStacks} stdout line(s) carrying a stack` : ''}${nonJson ? `; ${nonJson} non-JSON stdout line(s)` : ''}; gateway ${ok ? 'alive' : gw.exited ? crashText(gw) : 'not answering'}`,
      });
    }
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** Expected network errors: a malformed chunked body, a client reset mid-stream, a bad request line. */
function stackCases(fake: FakeOllama): { name: string; run: (g: Gw) => Promise<void> }[] {
  return [
    {
      name: 'malformed chunked body on /api/chat',
      run: async (g) => {
        await rawExchange(
          g.port,
          `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\nZZZ-not-hex\r\n\r\n`,
          { timeoutMs: 3000, waitClose: true },
        );
      },
    },
    {
      name: 'client reset mid-stream',
      run: async (g) => {
        fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-stream.ndjson'), gapMs: 100 }, '/api/chat');
        const body = CHAT();
        let reset = false;
        await rawExchange(
          g.port,
          `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          {
            timeoutMs: 5000,
            onData: (sock, data) => {
              if (!reset && data.includes('"done":false')) {
                reset = true;
                sock.resetAndDestroy();
              }
            },
          },
        );
        await sleep(1500);
      },
    },
    {
      name: 'bad request line',
      run: async (g) => {
        await rawExchange(g.port, 'THIS IS NOT HTTP\r\n\r\n', { timeoutMs: 3000, waitClose: true });
      },
    },
  ];
}
