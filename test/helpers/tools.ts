/** External tools some tests use (Prometheus's promtool and server), installed by .ci/run. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/**
 * Returns a skip reason when `cmd` is missing outside CI, and fails in CI, where .ci/run installs
 * it (apt-get install prometheus).
 */
export function requireTool(cmd: string, pkg = 'prometheus'): string | false {
  if (have(cmd)) return false;
  if (process.env.CI) assert.fail(`${cmd} is not installed (apt-get install ${pkg})`);
  return `${cmd} is not installed`;
}

/** The PromQL of the dashboard's panels, with Grafana's variables given concrete values. */
export function dashboardQueries(dashboard: {
  panels: { id: number; title: string; targets?: { expr: string; refId: string }[] }[];
}): { name: string; expr: string }[] {
  return dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      name: `panel_${p.id}_${t.refId}`,
      expr: t.expr
        .replace(/\$__rate_interval/g, '1m')
        .replace(/\$model/g, '.*')
        .replace(/\$backend/g, '.*'),
    })),
  );
}

/** Debian's Chromium, which the browser tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Returns a skip reason when Chromium is missing outside CI, and fails in CI (.ci/run installs it). */
export function requireChromium(): string | false {
  if (spawnSync(CHROMIUM, ['--version']).status === 0) return false;
  if (process.env.CI) assert.fail(`${CHROMIUM} is not installed (apt-get install chromium)`);
  return `${CHROMIUM} is not installed`;
}

/**
 * Chromium's flags for the tests: headless, and nothing of its own on the network (no QUIC, no
 * background fetches, no component updates, no sync), so every request it makes is the page's.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
