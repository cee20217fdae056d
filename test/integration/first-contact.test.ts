/**
 * What a newcomer sees first, run as a process the way users start it: a healthy start and a scrape
 * log nothing at WARN or above; one condition is one line (Ollama down at start, a pass-through
 * that fails); the start-up line is printed whatever LOG_LEVEL says and names every backend, as
 * `/readyz` does; an unsupported Node.js is refused with one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { freePort, MAIN, runGateway as run, runWorkers, type GatewayProcess } from '../helpers/process';

const LOUD = new Set(['warn', 'error', 'fatal']);
const loud = (p: GatewayProcess) => p.lines.filter((l) => LOUD.has(String(l.level)));
const settle = () => new Promise((r) => setTimeout(r, 700));

describe('a first start', () => {
  let fake: FakeOllama;
  before(async () => {
    fake = await new FakeOllama().start();
  });
  after(() => fake.close());

  it('with default settings, a start, a call and a scrape log nothing at WARN or above', async () => {
    const port = await freePort();
    const p = run({ OLLAMA_HOST: fake.origin, PORT: String(port) });
    try {
      await p.waitFor('gateway listening');
      await p.waitFor('Ollama is reachable');
      const chat = await fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: false }),
      });
      assert.equal(chat.status, 200);
      await chat.arrayBuffer();
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /target_info\{/);
      await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.arrayBuffer());
      await settle();
      assert.deepEqual(loud(p), []);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      assert.deepEqual(loud(p), []);
      assert.equal(p.stderr, '');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('prints the start-up line whatever LOG_LEVEL says', async () => {
    for (const level of ['WARNING', 'ERROR']) {
      const p = run({ OLLAMA_HOST: fake.origin, PORT: String(await freePort()), LOG_LEVEL: level, OLLAMA_POLL_INTERVAL_SECONDS: '0' });
      try {
        const line = await p.waitFor('gateway listening');
        assert.equal(line.ollama, fake.origin);
        assert.ok(line.traces && line.metrics, `${level}: says where telemetry goes`);
        assert.ok(!p.lines.some((l) => l.msg === 'Ollama is reachable'), `${level}: other INFO lines stay quiet`);
      } finally {
        p.child.kill('SIGKILL');
      }
    }
  });

  it('with several backends, names every one in the start-up line and in /readyz', async () => {
    const second = await new FakeOllama().start();
    const port = await freePort();
    const p = run({ OLLAMA_HOST: `${fake.origin},${second.origin}`, PORT: String(port) });
    try {
      const line = await p.waitFor('gateway listening');
      assert.equal(line.ollama, `${fake.origin}, ${second.origin}`);
      const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { ollama: string; backends: { name: string }[] };
      assert.equal(ready.ollama, `${fake.origin}, ${second.origin}`);
      assert.deepEqual(
        ready.backends.map((b) => b.name),
        [fake.origin, second.origin].map((o) => new URL(o).host),
      );
    } finally {
      p.child.kill('SIGKILL');
      await second.close();
    }
  });
});

describe('several worker processes', () => {
  it('tell the console how many there are, so the page can say a replaced worker took its history', async () => {
    const fake = await new FakeOllama().start();
    const w = await runWorkers(fake.origin, 2, { OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    try {
      const now = (await (await fetch(`${w.url}/console/api/v1/now`)).json()) as { gateway: { workers: number } };
      assert.equal(now.gateway.workers, 2);
    } finally {
      await w.stop();
      await fake.close();
    }
  });
});

describe('one condition, one line', () => {
  for (const poll of ['15', '0']) {
    it(`Ollama down at start: one WARN line naming the likely fix (polling ${poll === '0' ? 'off' : 'on'})`, async () => {
      const port = await freePort();
      const p = run({ OLLAMA_HOST: `http://127.0.0.1:${await freePort()}`, PORT: String(port), OLLAMA_POLL_INTERVAL_SECONDS: poll });
      try {
        const warn = await p.waitFor('Ollama is not reachable yet; serving anyway, requests will get 502 until it is');
        assert.match(String(warn.fix), /ollama serve|host\.docker\.internal/, 'the likely fix (which one depends on whether this runs in a container)');
        await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.arrayBuffer());
        await settle();
        assert.deepEqual(
          loud(p).map((l) => l.msg),
          ['Ollama is not reachable yet; serving anyway, requests will get 502 until it is'],
        );
      } finally {
        p.child.kill('SIGKILL');
      }
    });
  }

  it('a pass-through Ollama refuses is one ERROR line, the access line, with the detail', async () => {
    const port = await freePort();
    const p = run({ OLLAMA_HOST: `http://127.0.0.1:${await freePort()}`, PORT: String(port), OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    try {
      await p.waitFor('gateway listening');
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/tags`)).status, 502);
      await settle();
      const lines = p.lines.filter((l) => l.path === '/api/tags');
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0]!.level, 'error');
      assert.equal(lines[0]!.status, 502);
      assert.equal(lines[0]!.error, 'upstream_unreachable');
      assert.match(String(lines[0]!.detail), /refused the connection/);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});

describe('an unsupported Node.js', () => {
  const old = spawnSync('/usr/bin/node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
  const version = old.status === 0 ? old.stdout.trim() : '';
  const skip =
    version === '' ? 'no system Node.js at /usr/bin/node' : Number(version.split('.')[0]) >= 22 ? `the system Node.js ${version} is supported` : false;

  it('is refused at start with one line naming the supported lines', { skip }, () => {
    const r = spawnSync('/usr/bin/node', [MAIN], { encoding: 'utf8', env: { PATH: process.env.PATH, PORT: '0' }, timeout: 10_000 });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `ollama-otel-gateway: Node.js ${version} is not supported: use Node.js 22 or newer (the LTS lines 22, 24, 26 are supported)\n`);
  });
});
