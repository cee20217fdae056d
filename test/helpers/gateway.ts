/**
 * Starts the real gateway in-process on 127.0.0.1 port 0 in front of a fake Ollama, with its logs
 * captured in memory, and reads its `/metrics`.
 */
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startGateway, type HistorySizes, type RunningGateway } from '../../src/server';
import { FakeOllama } from './fake-ollama';

export interface TestStack {
  fake: FakeOllama;
  gw: RunningGateway;
  /** `http://127.0.0.1:<gateway port>` */
  url: string;
  /** Log lines the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startStack(env: Record<string, string> = {}, overrides: Partial<Config> = {}, history?: HistorySizes): Promise<TestStack> {
  const fake = await new FakeOllama().start();
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  // Background polling is off unless a test turns it on, so the fake sees only the test's requests;
  // the usage ledger is off unless a test gives it a place.
  const config = loadConfig(
    { OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'DEBUG', OLLAMA_POLL_INTERVAL_SECONDS: '0', LEDGER_URL: 'off', ...env },
    overrides,
  );
  const gw = await startGateway(config, createLogger(config.logLevel, sink), undefined, undefined, history);
  const url = `http://127.0.0.1:${gw.port}`;
  return {
    fake,
    gw,
    url,
    logs,
    close: async () => {
      await gw.stop(1000);
      await fake.close();
    },
  };
}

/** The `/metrics` text; `token`: METRICS_BEARER_TOKEN, when the gateway has one. */
export async function metricsText(url: string, token?: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/**
 * The value of one series in a Prometheus exposition, or undefined when absent. `labels` must match
 * exactly the series' label set (excluding `le`, which is given separately for buckets).
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]] = pair[2];
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(got).length) continue;
    if (keys.every((k) => got[k] === labels[k])) return Number(m[3]);
  }
  return undefined;
}

export interface GatewayOnly {
  gw: RunningGateway;
  /** `http://127.0.0.1:<gateway port>` */
  url: string;
  /** Log lines the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * Starts the gateway in-process as `startStack` does, but in front of any upstream `origin` (a
 * hostile server, say), which the caller starts and closes itself.
 */
export async function startGatewayFor(origin: string, env: Record<string, string> = {}, overrides: Partial<Config> = {}): Promise<GatewayOnly> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const config = loadConfig(
    { OLLAMA_HOST: origin, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'DEBUG', OLLAMA_POLL_INTERVAL_SECONDS: '0', LEDGER_URL: 'off', ...env },
    overrides,
  );
  const gw = await startGateway(config, createLogger(config.logLevel, sink));
  return { gw, url: `http://127.0.0.1:${gw.port}`, logs, close: () => gw.stop(1000) };
}
