/**
 * `npm run check:quick-start`: the README's quick start, run as written on a fresh clone. It takes
 * the commands from the README's "Quick start" section (the two setup commands, then the curl),
 * clones the repository's committed HEAD into a temporary folder, starts a fake Ollama on
 * 127.0.0.1:11434 (where the commands expect Ollama), runs `npm ci` and the start command there,
 * then the curl, and checks the places the README says to look (/console, /metrics). Ports 11434
 * and 8000 must be free. Exits 1 with the step that failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeOllama } from '../test/helpers/fake-ollama';
import { parseFlags } from './cli';

const REPO = path.resolve(__dirname, '..', '..');

/** The shell commands of the README's quick start: each fenced `sh` block of the section, line by line. */
export function quickStartCommands(readme: string): string[][] {
  const start = readme.indexOf('\n## Quick start\n');
  if (start === -1) throw new Error('README has no "## Quick start" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim().split('\n'));
}

/** Runs a shell command without blocking the event loop; its exit status and output. */
function run(command: string, cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

class StepFailed extends Error {}

/** Stops the check at `step`; the clean-up (gateway, fake, clone) still runs. */
function fail(step: string, detail: string): never {
  throw new StepFailed(`quick start: ${step} failed: ${detail}`);
}

async function main(): Promise<void> {
  parseFlags('check:quick-start', "runs the README's quick start as written on a fresh clone", []);
  const blocks = quickStartCommands(readFileSync(path.join(REPO, 'README.md'), 'utf8'));
  const [setup, call] = blocks;
  if (blocks.length !== 2 || setup?.length !== 2 || call?.length !== 1)
    fail('reading the README', `expected two commands, then one; got ${JSON.stringify(blocks)}`);
  const [install, startCmd] = setup;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quick-start-'));
  const fake = await new FakeOllama().start(11434).catch((err: Error) => fail('starting a fake Ollama on 127.0.0.1:11434', err.message));
  let gateway: ReturnType<typeof spawn> | undefined;
  try {
    const clone = spawnSync('git', ['clone', '--quiet', REPO, dir], { encoding: 'utf8' });
    if (clone.status !== 0) fail('git clone', clone.stderr);
    process.stdout.write(`$ ${install}\n`);
    const ci = spawnSync('sh', ['-c', install!], { cwd: dir, stdio: 'inherit', timeout: 600_000 });
    if (ci.status !== 0) fail(install!, `exit ${ci.status}`);
    process.stdout.write(`$ ${startCmd}\n`);
    gateway = spawn('sh', ['-c', startCmd!], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    let out = '';
    gateway.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const until = Date.now() + 60_000;
    while (!out.includes('"msg":"gateway listening"')) {
      if (Date.now() > until || gateway.exitCode !== null) fail(startCmd!, `no "gateway listening" line: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    process.stdout.write(`$ ${call[0]}\n`);
    // Asynchronously: the fake Ollama answers from this process's event loop.
    const curl = await run(call[0]!, dir);
    if (curl.status !== 0) fail(call[0]!, `exit ${curl.status}: ${curl.stderr}`);
    const answer = JSON.parse(curl.stdout) as { message?: { content?: string }; done?: boolean };
    if (!answer.done || typeof answer.message?.content !== 'string') fail(call[0]!, `not a chat answer: ${curl.stdout}`);
    process.stdout.write(`${curl.stdout.trim().slice(0, 200)}\n`);
    const consolePage = await fetch('http://127.0.0.1:8000/console/');
    if (consolePage.status !== 200 || !(await consolePage.text()).includes('<html')) fail('GET /console', `status ${consolePage.status}`);
    const metrics = await fetch('http://127.0.0.1:8000/metrics');
    const text = await metrics.text();
    if (metrics.status !== 200 || !/ollama_requests_total\{[^}]*model="llama3\.2[^"]*"[^}]*\} 1$/m.test(text))
      fail('GET /metrics', `status ${metrics.status}, no ollama_requests_total for the call`);
    process.stdout.write('quick start: ok (clone, npm ci, npm start, curl, /console, /metrics)\n');
  } finally {
    if (gateway?.pid !== undefined && gateway.exitCode === null) {
      // The whole group: sh, npm and the gateway under it.
      process.kill(-gateway.pid, 'SIGTERM');
      await new Promise((r) => gateway!.once('exit', r));
    }
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`${err instanceof StepFailed ? err.message : (err.stack ?? String(err))}\n`);
    process.exitCode = 1;
  });
}
