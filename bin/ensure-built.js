// Before `npm start`: compile the gateway only when a source is newer than the build, so a start
// takes well under a second and never removes the build another process is running from.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const built = path.join(root, 'dist', 'src', 'main.js');

function newest(dir) {
  let latest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(p));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, fs.statSync(p).mtimeMs);
  }
  return latest;
}

const builtAt = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0;
const sources = ['src', 'otel'].filter((d) => fs.existsSync(path.join(root, d)));
const changed =
  sources.some((d) => newest(path.join(root, d)) > builtAt) ||
  ['tsconfig.json', 'tsconfig.build.json'].some((f) => fs.existsSync(path.join(root, f)) && fs.statSync(path.join(root, f)).mtimeMs > builtAt);
if (changed) {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    if (builtAt > 0) process.exit(0); // an install without the compiler runs the build it came with
    process.stderr.write('ollama-otel-gateway: no build in dist/ and no TypeScript compiler: run npm ci first\n');
    process.exit(1);
  }
  process.stderr.write('ollama-otel-gateway: sources changed, compiling…\n');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
