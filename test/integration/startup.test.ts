/**
 * The first minutes: the command line, configuration mistakes that must not pass silently (a
 * gateway proxying to itself, a bad OpenTelemetry setting, an unreachable collector, an open port
 * without keys), and stopping under `npm start` the way a service manager stops it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SETTINGS } from '../../src/settings';
import { packageVersion } from '../../src/version';
import { FakeOllama } from '../helpers/fake-ollama';
import { startGatewayFor, type GatewayOnly } from '../helpers/gateway';
import { freePort, MAIN, runGateway as run } from '../helpers/process';
import { REPO } from '../helpers/tools';

/** Runs main.js with arguments and collects what it prints. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('the command line', () => {
  it('--help lists every setting with its default', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const s of SETTINGS) {
      const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(s.name + ' '));
      assert.ok(line, `--help names ${s.name}`);
      if (s.default !== '') assert.ok(line.includes(`(default: ${s.default})`), `${s.name} shows its default`);
    }
  });

  it('--version prints the version; an unknown argument is refused', async () => {
    const v = await cli(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout.trim(), packageVersion());
    const bad = await cli(['--port', '9000']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown argument "--port"/);
  });
});

describe('configuration that cannot go wrong silently', () => {
  let fake: FakeOllama;
  before(async () => {
    fake = await new FakeOllama().start();
  });
  after(() => fake.close());

  it('refuses to start with OLLAMA_HOST pointing at the gateway itself', async () => {
    const port = await freePort();
    const p = run({ OLLAMA_HOST: `127.0.0.1:${port}`, HOST: '0.0.0.0', PORT: String(port) });
    assert.equal(await p.exit, 2);
    assert.match(p.stderr, /OLLAMA_HOST="127\.0\.0\.1:\d+" is not valid: it is this gateway's own address/);
  });

  it('ends a loop through another proxy with 508 on the first hop back', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    let a: GatewayOnly | undefined;
    let b: GatewayOnly | undefined;
    try {
      a = await startGatewayFor(`127.0.0.1:${pb}`, { PORT: String(pa) });
      b = await startGatewayFor(`127.0.0.1:${pa}`, { PORT: String(pb) });
      const res = await fetch(`http://127.0.0.1:${pa}/api/chat`, { method: 'POST', body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}' });
      assert.equal(res.status, 508);
      assert.match(((await res.json()) as { error: string }).error, /loop detected/);
      // One request went round once: A forwarded it, B forwarded it, A refused it.
      assert.equal(a.logs.filter((l) => l.msg === 'request came back to the gateway: OLLAMA_HOST leads to a loop').length, 1);
    } finally {
      await a?.close();
      await b?.close();
    }
  });

  for (const [name, value] of [
    ['OTEL_TRACES_EXPORTER', 'jaegr'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'http'],
    ['OTEL_METRICS_EXPORTER', 'otlp,statsd'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'],
  ] as const) {
    it(`refuses ${name}=${value} with one line, as it refuses its own settings`, async () => {
      const p = run({ OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: '0', [name]: value });
      assert.equal(await p.exit, 2);
      const lines = p.stderr.trim().split('\n');
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, new RegExp(`${name}=".*" is not valid`));
    });
  }

  it('says where traces go, warns when the collector cannot be reached, and does not stall the exit', async () => {
    const closed = await freePort();
    const port = await freePort();
    const p = run({
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OLLAMA_POLL_INTERVAL_SECONDS: '0',
    });
    try {
      const up = await p.waitFor('gateway listening');
      assert.equal(up.traces, `OTLP http/json to http://127.0.0.1:${closed}`);
      assert.deepEqual(up.metrics, ['Prometheus at /metrics']);
      for (let i = 0; i < 3; i++)
        await (
          await fetch(`http://127.0.0.1:${port}/api/chat`, {
            method: 'POST',
            body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
          })
        ).arrayBuffer();
      const warn = await p.waitFor('OpenTelemetry export problem', 15_000);
      assert.equal(warn.level, 'warn');
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      assert.ok(Date.now() - t0 < 9000, `exited ${Date.now() - t0} ms after SIGTERM`);
      assert.ok(p.lines.filter((l) => l.msg === 'OpenTelemetry export problem').length <= 3, 'export failures are rate-limited');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('warns once when it listens on every interface without API keys, and not with keys', async () => {
    const open = run({ OLLAMA_HOST: fake.origin, HOST: '0.0.0.0', PORT: String(await freePort()), OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    const keyed = run({ OLLAMA_HOST: fake.origin, HOST: '0.0.0.0', PORT: String(await freePort()), OLLAMA_POLL_INTERVAL_SECONDS: '0', GATEWAY_API_KEYS: 'k1' });
    try {
      const w = await open.waitFor(
        'listening on every interface without API keys: anyone who reaches this port can use Ollama through the gateway; set GATEWAY_API_KEYS (or HOST=127.0.0.1 to serve this machine only)',
      );
      assert.equal(w.level, 'warn');
      await keyed.waitFor('gateway listening');
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!keyed.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('listening on every interface')));
    } finally {
      open.child.kill('SIGKILL');
      keyed.child.kill('SIGKILL');
    }
  });
});

describe('npm start under a service manager', () => {
  it('stops, drained, when SIGTERM reaches npm rather than the gateway', { timeout: 60_000 }, async () => {
    const fake = await new FakeOllama().start();
    const port = await freePort();
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: REPO,
      env: { ...process.env, OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port), OLLAMA_POLL_INTERVAL_SECONDS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npm.stdout.on('data', (c: Buffer) => (out += c.toString()));
    npm.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const until = Date.now() + 45_000;
      while (!out.includes('gateway listening')) {
        if (Date.now() > until) assert.fail(`npm start did not come up: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(await portOpen(port));
      npm.kill('SIGTERM');
      const gone = Date.now() + 10_000;
      while (await portOpen(port)) {
        if (Date.now() > gone) assert.fail('the gateway went on serving after npm was stopped');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      npm.kill('SIGKILL');
      await fake.close();
    }
  });
});
