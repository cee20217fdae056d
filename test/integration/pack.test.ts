/**
 * The package as users get it: `npm pack`, installed into an empty folder, run with npx. The
 * tarball must carry the compiled gateway and its command, and nothing of the repository else.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageVersion } from '../../src/version';
import { freePort } from '../helpers/process';
import { REPO } from '../helpers/tools';

describe('the packed package', { timeout: 240_000 }, () => {
  let dir: string;
  let files: string[];
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'gw-pack-'));
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const packed = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    files = packed[0]!.files.map((f) => f.path);
    const tarball = path.join(dir, packed[0]!.filename);
    execFileSync('npm', ['init', '-y'], { cwd: dir, stdio: 'ignore' });
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: dir, stdio: 'ignore' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("holds the compiled gateway, its command and the console's page, and no sources, tests or benchmarks", () => {
    assert.ok(files.includes('dist/src/main.js'));
    assert.ok(files.includes('bin/ollama-otel-gateway.js'));
    assert.ok(files.includes('package.json'));
    for (const asset of readdirSync(path.join(REPO, 'src', 'console', 'assets'))) assert.ok(files.includes(`src/console/assets/${asset}`), asset);
    assert.deepEqual(
      files.filter(
        (f) => (/^(src|otel|test|bench)\//.test(f) && !f.startsWith('src/console/assets/')) || f.startsWith('dist/test') || f.startsWith('dist/bench'),
      ),
      [],
    );
  });

  it('runs with npx: --version, --help, and serves until SIGTERM', async () => {
    const version = execFileSync('npx', ['--no-install', 'ollama-otel-gateway', '--version'], { cwd: dir, encoding: 'utf8' }).trim();
    assert.equal(version, packageVersion());
    const help = execFileSync('npx', ['--no-install', 'ollama-otel-gateway', '--help'], { cwd: dir, encoding: 'utf8' });
    assert.match(help, /OLLAMA_HOST .*\(default: http:\/\/localhost:11434\)/);

    const port = await freePort();
    const bin = path.join(
      dir,
      'node_modules',
      '.bin',
      readdirSync(path.join(dir, 'node_modules', '.bin')).find((f) => f === 'ollama-otel-gateway')!,
    );
    const child = spawn(bin, [], {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), OLLAMA_HOST: '127.0.0.1:9', OLLAMA_POLL_INTERVAL_SECONDS: '0' },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const until = Date.now() + 10_000;
      for (;;) {
        const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (Date.now() > until) assert.fail('the installed gateway did not answer /healthz');
        await new Promise((r) => setTimeout(r, 50));
      }
      // The console's page and script come from the installed package.
      const page = await fetch(`http://127.0.0.1:${port}/console/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /console\.js/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/console/console.js`)).status, 200);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
