/**
 * The deployment files, checked as far as can be without a Docker engine or a collector binary:
 * the collector's pipelines name only defined components, the Dockerfile builds and starts the
 * gateway the way package.json does, and the compose stack wires the services together.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

const REPO = path.resolve(__dirname, '..', '..', '..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

type Section = Record<string, unknown>;

describe('collector-config.yaml', () => {
  const cfg = parse(read('collector-config.yaml')) as Record<string, Section>;
  const service = cfg.service as { extensions?: string[]; pipelines: Record<string, Record<string, string[]>> };

  it('names in every pipeline only receivers, processors and exporters that are defined', () => {
    for (const [name, pipeline] of Object.entries(service.pipelines)) {
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const component of pipeline[kind] ?? []) {
          assert.ok(cfg[kind] && component in cfg[kind], `pipeline ${name} names ${kind.slice(0, -1)} "${component}", which is not defined`);
        }
      }
      assert.ok((pipeline.receivers ?? []).length > 0 && (pipeline.exporters ?? []).length > 0, `pipeline ${name} needs a receiver and an exporter`);
    }
    for (const ext of service.extensions ?? []) assert.ok(cfg.extensions && ext in cfg.extensions, `extension ${ext} is not defined`);
  });

  it('defines nothing that no pipeline uses', () => {
    const used = new Set(Object.values(service.pipelines).flatMap((p) => [...(p.receivers ?? []), ...(p.processors ?? []), ...(p.exporters ?? [])]));
    for (const kind of ['receivers', 'processors', 'exporters']) {
      for (const component of Object.keys(cfg[kind] ?? {})) assert.ok(used.has(component), `${kind.slice(0, -1)} "${component}" is defined but unused`);
    }
  });

  it('receives OTLP over gRPC and HTTP, batches, sends traces to an OTLP backend and metrics to Prometheus, with debug output', () => {
    const otlp = (cfg.receivers as Record<string, { protocols: Record<string, { endpoint: string }> }>).otlp;
    assert.match(otlp.protocols.grpc.endpoint, /:4317$/);
    assert.match(otlp.protocols.http.endpoint, /:4318$/);
    const { traces, metrics } = service.pipelines;
    assert.ok(traces.processors.includes('batch') && metrics.processors.includes('batch'));
    assert.ok(traces.exporters.some((e) => e.startsWith('otlp')));
    assert.ok(metrics.exporters.includes('prometheus'));
    assert.ok(traces.exporters.includes('debug') && metrics.exporters.includes('debug'));
    assert.match(String((cfg.exporters as Record<string, Section>).debug.verbosity), /DEBUG_VERBOSITY/);
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string } };
  const stages = text.split('\n').filter((l) => /^FROM /.test(l));

  it('is multi-stage on a slim Node LTS image', () => {
    assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
    for (const from of stages) {
      const m = /^FROM node:(\d+)-[a-z]+-slim/.exec(from);
      assert.ok(m, `${from} is not a slim Node image`);
      assert.equal(Number(m[1]) % 2, 0, 'an LTS (even) Node major');
    }
  });

  it("builds with the package's build script and starts with exactly its start command", () => {
    assert.match(text, /^RUN npm run build$/m);
    assert.ok(pkg.scripts.build, 'package.json defines build');
    const cmd = /^CMD (\[.*\])$/m.exec(text);
    assert.ok(cmd);
    assert.equal((JSON.parse(cmd[1]) as string[]).join(' '), pkg.scripts.start);
  });

  it('ships production dependencies only, runs as a non-root user, exposes 8000 and checks /healthz', () => {
    const runtime = text.slice(text.lastIndexOf('\nFROM '));
    assert.match(runtime, /npm ci --omit=dev/);
    assert.match(runtime, /^USER (?!root)\S+$/m);
    assert.match(runtime, /^EXPOSE 8000$/m);
    assert.match(runtime, /HEALTHCHECK [\s\S]*\/healthz/);
  });

  it('copies only files that exist', () => {
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1].split(/\s+/)) assert.ok(existsSync(path.join(REPO, src)), `COPY ${src}: no such file`);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, Record<string, unknown>> };
  const s = compose.services;

  it('runs Ollama, the gateway, the collector, Prometheus, Jaeger and Grafana', () => {
    for (const name of ['ollama', 'gateway', 'collector', 'prometheus', 'jaeger', 'grafana']) assert.ok(s[name], `service ${name}`);
    assert.equal(s.gateway.build, '.');
  });

  it("points the gateway at Ollama and at the collector's OTLP/HTTP port", () => {
    const env = s.gateway.environment as Record<string, string>;
    assert.equal(env.OLLAMA_HOST, 'http://ollama:11434');
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://collector:4318');
    assert.ok((s.gateway.ports as string[]).includes('8000:8000'));
  });

  it('mounts the collector configuration and the Prometheus configuration that scrapes the gateway', () => {
    assert.ok((s.collector.volumes as string[]).some((v) => v.startsWith('./collector-config.yaml:')));
    assert.ok((s.prometheus.volumes as string[]).some((v) => v.startsWith('./prometheus/prometheus.yml:')));
    const prom = parse(read('prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    const job = prom.scrape_configs.find((j) => j.job_name === 'ollama-otel-gateway');
    assert.deepEqual(job?.static_configs[0].targets, ['gateway:8000']);
  });

  it('loads the alert rules into Prometheus and provisions Grafana with the data source and the dashboard', () => {
    assert.ok((s.prometheus.volumes as string[]).includes('./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'));
    const prom = parse(read('prometheus/prometheus.yml')) as { rule_files: string[] };
    assert.deepEqual(prom.rule_files, ['alerts.yml']);
    const vols = s.grafana.volumes as string[];
    assert.ok(vols.includes('./grafana/provisioning:/etc/grafana/provisioning:ro'));
    const dashMount = vols.find((v) => v.startsWith('./grafana/dashboards:'))!.split(':')[1];
    const provider = parse(read('grafana/provisioning/dashboards/dashboards.yml')) as { providers: { options: { path: string } }[] };
    assert.equal(provider.providers[0].options.path, dashMount);
    const ds = parse(read('grafana/provisioning/datasources/prometheus.yml')) as { datasources: { url: string }[] };
    assert.equal(ds.datasources[0].url, 'http://prometheus:9090');
    assert.ok(existsSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json')));
  });
});
