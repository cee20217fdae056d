/**
 * The Prometheus alerting rules and the Grafana dashboard, checked with Prometheus's own tools:
 * `promtool check rules`, `promtool test rules` (prometheus/alerts.test.yml), and every dashboard
 * query compiled as a rule.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { dashboardQueries, REPO, requireTool } from '../helpers/tools';

function promtool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: REPO, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('alerting rules', () => {
  it('pass promtool check rules', (t) => {
    const skip = requireTool('promtool');
    if (skip) return t.skip(skip);
    const r = promtool(['check', 'rules', 'prometheus/alerts.yml']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS: 10 rules found/);
  });

  it('pass their unit tests (promtool test rules)', (t) => {
    const skip = requireTool('promtool');
    if (skip) return t.skip(skip);
    const r = promtool(['test', 'rules', 'prometheus/alerts.test.yml']);
    assert.equal(r.status, 0, r.out);
  });

  it('each have a unit test that makes them fire', () => {
    const rules = readFileSync(path.join(REPO, 'prometheus', 'alerts.yml'), 'utf8');
    const tests = readFileSync(path.join(REPO, 'prometheus', 'alerts.test.yml'), 'utf8');
    const names = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    assert.equal(names.length, 10);
    for (const n of names) assert.match(tests, new RegExp(`alertname: ${n}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${n} is never expected to fire`);
  });

  for (const alert of ['OllamaPromptsTruncated', 'OllamaTenantBudget80']) {
    it(`test ${alert} both firing and not firing`, () => {
      const tests = readFileSync(path.join(REPO, 'prometheus', 'alerts.test.yml'), 'utf8');
      assert.match(tests, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts: \\[\\]`), 'a case where it does not fire');
      assert.match(tests, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), 'a case where it fires');
    });
  }
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8'));

  it('uses the provisioned Prometheus data source and fits the grid', () => {
    const ds = readFileSync(path.join(REPO, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8');
    const uid = /uid: (\S+)/.exec(ds)![1];
    for (const p of dashboard.panels as { title: string; type: string; datasource?: { uid: string }; gridPos: { x: number; w: number } }[]) {
      if (p.type !== 'row') assert.equal(p.datasource?.uid, uid, p.title);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} overflows the grid`);
    }
  });

  it('has the panels operators need', () => {
    const titles = (dashboard.panels as { title: string }[]).map((p) => p.title).join('\n');
    for (const t of [
      'Request rate per model',
      'Error ratio per model',
      'Response time',
      'Time to first token',
      'Tokens per second per model',
      'Queueing',
      'Requests in flight per model',
      'Loaded models: memory and VRAM',
      'Context window used',
      'Prompts truncated',
      'Output truncated',
      'Generation truncated',
      'Model loads and unloads',
      'Load time',
      'Calls in flight per backend',
      'Warm models per backend',
      'Cold loads per backend',
      'Failovers',
      'GPU share per tenant',
      'Tokens per tenant',
    ]) {
      assert.ok(titles.includes(t), t);
    }
  });

  it('has only queries that Prometheus compiles', (t) => {
    const skip = requireTool('promtool');
    if (skip) return t.skip(skip);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dash-'));
    try {
      const rules = { groups: [{ name: 'dashboard', rules: dashboardQueries(dashboard).map((q) => ({ record: q.name, expr: q.expr })) }] };
      writeFileSync(path.join(dir, 'dashboard.rules.yml'), stringify(rules));
      const r = spawnSync('promtool', ['check', 'rules', path.join(dir, 'dashboard.rules.yml')], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
