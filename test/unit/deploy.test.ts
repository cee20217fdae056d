/**
 * The deployment files, checked as far as can be without a Docker engine or a collector binary:
 * the collector's pipelines name only defined components, the Dockerfile builds and starts the
 * gateway the way package.json does, and the compose stack wires the services together, with every
 * image pinned and Ollama reachable only through the gateway.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { SUPPORTED_NODE_LINES } from '../../src/node-support';

const REPO = path.resolve(__dirname, '..', '..', '..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

type Section = Record<string, unknown>;

/** `name:tag` split at the tag's colon (a registry host may carry a port); no tag gives ''. */
function imageTag(image: string): { name: string; tag: string } {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? { name: image.slice(0, at), tag: image.slice(at + 1) } : { name: image, tag: '' };
}

/** An explicit release: x.y.z, optionally v-prefixed, optionally followed by a variant (-bookworm-slim). */
const PINNED_TAG = /^v?\d+\.\d+\.\d+(?:-[a-z0-9.-]+)?$/;

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

  it('uses no deprecated component name (otlp and otlphttp exporters are otlp_grpc and otlp_http since collector 0.144.0)', () => {
    const names = Object.keys(cfg.exporters ?? {}).map((n) => n.split('/')[0]);
    for (const n of names) assert.ok(n !== 'otlp' && n !== 'otlphttp', `exporter ${n}: a deprecated alias`);
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
    assert.ok(traces.exporters.some((e) => e.startsWith('otlp_grpc') || e.startsWith('otlp_http')));
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
      const m = /^FROM node:(\d+)\.\d+\.\d+-[a-z]+-slim\b/.exec(from);
      assert.ok(m, `${from} is not a slim Node image pinned to a full version`);
      assert.equal(Number(m[1]) % 2, 0, 'an LTS (even) Node major');
    }
  });

  it('pins every base image to an explicit version, the same one in every stage', () => {
    assert.doesNotMatch(text, /:latest\b/);
    const images = stages.map((from) => from.split(/\s+/)[1]);
    for (const image of images) {
      const { tag } = imageTag(image);
      assert.match(tag, PINNED_TAG, `FROM ${image}: no explicit version tag`);
    }
    assert.equal(new Set(images).size, 1, `the stages build and run on one Node: ${images.join(', ')}`);
  });

  it('installs with --ignore-scripts in both stages, then copies the sources and builds', () => {
    const installs = [...text.matchAll(/^RUN npm ci\b.*$/gm)].map((m) => m[0]);
    assert.equal(installs.length, 2, 'one npm ci per stage');
    for (const install of installs) assert.match(install, /\s--ignore-scripts\b/, `${install}: lifecycle scripts (prepare) would run`);
    const build = text.slice(0, text.lastIndexOf('\nFROM '));
    const at = (re: RegExp) => {
      const m = re.exec(build);
      assert.ok(m, `the build stage has ${re}`);
      return m.index;
    };
    const install = at(/^RUN npm ci .*--ignore-scripts/m);
    const compile = at(/^RUN npm run build$/m);
    for (const src of ['src', 'otel', 'tsconfig.json', 'tsconfig.build.json']) {
      const copy = at(new RegExp(`^COPY (?:.+ )?${src.replaceAll('.', '\\.')}(?: .+)? \\S+$`, 'm'));
      assert.ok(install < copy && copy < compile, `${src} is copied after npm ci and before npm run build`);
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

  it("carries the console's page into the runtime image, where the compiled gateway looks for it", () => {
    const runtime = text.slice(text.lastIndexOf('\nFROM '));
    assert.match(runtime, /^COPY --from=build \/app\/src\/console\/assets \.\/src\/console\/assets$/m);
  });

  it('copies only files that exist', () => {
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1].split(/\s+/)) assert.ok(existsSync(path.join(REPO, src)), `COPY ${src}: no such file`);
    }
  });
});

describe('docker-compose.yml', () => {
  const text = read('docker-compose.yml');
  const compose = parse(text) as { services: Record<string, Record<string, unknown>> };
  const s = compose.services;

  it('runs Ollama, the gateway, the collector, Prometheus, Jaeger and Grafana', () => {
    for (const name of ['ollama', 'gateway', 'collector', 'prometheus', 'jaeger', 'grafana']) assert.ok(s[name], `service ${name}`);
    assert.equal(s.gateway.build, '.');
  });

  it('pins every image to an explicit version, none to :latest', () => {
    assert.doesNotMatch(text, /:latest\b/);
    for (const [name, service] of Object.entries(s)) {
      if (service.build !== undefined && service.image === undefined) continue;
      assert.equal(typeof service.image, 'string', `service ${name} has an image or a build`);
      const { tag } = imageTag(service.image as string);
      assert.match(tag, PINNED_TAG, `service ${name}: ${String(service.image)} has no explicit version tag`);
    }
  });

  it('says where each pin comes from, in a comment just above its image line', () => {
    const lines = text.split('\n');
    for (const [i, line] of lines.entries()) {
      if (!/^\s+image: /.test(line)) continue;
      const comment: string[] = [];
      for (let j = i - 1; j >= 0 && /^\s+# /.test(lines[j]!); j--) comment.unshift(lines[j]!);
      assert.match(comment.join(' '), /github\.com\/|pull request/, `${line.trim()}: no source for the pin above it`);
    }
  });

  it("pins Ollama to a release the fixtures' README records (not a version nobody has seen)", () => {
    const { tag } = imageTag(s.ollama.image as string);
    const recorded = /last release `v(\d+\.\d+\.\d+)`/.exec(read('test/fixtures/README.md'));
    assert.ok(recorded, "the fixtures' README names Ollama's last release");
    assert.equal(tag, recorded[1]);
  });

  it("publishes the gateway and the UIs only, never Ollama's 11434", () => {
    assert.equal(s.ollama.ports, undefined, 'the ollama service publishes no port');
    const published = Object.entries(s).flatMap(([name, service]) =>
      ((service.ports ?? []) as (string | number | { published?: unknown; target?: unknown })[]).map((p) => ({
        name,
        p: typeof p === 'object' ? `${String(p.published)}:${String(p.target)}` : String(p),
      })),
    );
    for (const { name, p } of published) assert.doesNotMatch(p, /11434/, `service ${name} publishes ${p}`);
    assert.deepEqual(published.map(({ name, p }) => `${name} ${p}`).sort(), [
      'gateway 127.0.0.1:8000:8000',
      'grafana 127.0.0.1:3000:3000',
      'jaeger 127.0.0.1:16686:16686',
      'prometheus 127.0.0.1:9090:9090',
    ]);
    assert.doesNotMatch(text, /^\s*#?\s*-\s*"?[\d.:]*11434/m, 'no 11434 port entry, not even commented out');
  });

  it('carries the NVIDIA GPU reservation for Ollama, commented out for CPU-only hosts', () => {
    assert.equal(s.ollama.deploy, undefined, 'off by default');
    const lines = text.split('\n');
    const start = lines.findIndex((l) => /^ {4}# deploy:\s*$/.test(l));
    assert.ok(start > 0, 'a commented-out deploy: block');
    assert.match(lines[start - 1], /^ {4}# \S/, 'a one-line comment above it says what it is for');
    const ollamaAt = lines.findIndex((l) => l === '  ollama:');
    const nextService = lines.findIndex((l, i) => i > ollamaAt && /^ {2}\S/.test(l));
    assert.ok(ollamaAt < start && start < nextService, 'inside the ollama service');
    const block: string[] = [];
    for (let i = start; i < lines.length && (i === start || /^ {4}# {3}/.test(lines[i])); i++) block.push(lines[i].replace(/^ {4}# /, ''));
    assert.deepEqual(parse(block.join('\n')), {
      deploy: { resources: { reservations: { devices: [{ driver: 'nvidia', count: 'all', capabilities: ['gpu'] }] } } },
    });
  });

  it("points the gateway at Ollama and at the collector's OTLP/HTTP port", () => {
    const env = s.gateway.environment as Record<string, string>;
    assert.equal(env.OLLAMA_HOST, 'http://ollama:11434');
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://collector:4318');
    // Without API keys, this machine only: the stack serves no one else until keys are set.
    assert.ok((s.gateway.ports as string[]).includes('127.0.0.1:8000:8000'));
    assert.equal(env.GATEWAY_API_KEYS, undefined);
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

describe('the supported Node.js lines, one source (src/node-support.ts)', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version?: string }> };
  const oldest = SUPPORTED_NODE_LINES[0]!;

  it("package.json's engines and @types/node are the oldest supported line", () => {
    assert.equal(pkg.engines.node, `>=${oldest}`);
    assert.equal(Number(pkg.devDependencies['@types/node']!.split('.')[0]), oldest, 'the types of the oldest line: no API it lacks type-checks');
    assert.equal(Number(lock.packages['node_modules/@types/node']!.version!.split('.')[0]), oldest, 'package-lock.json agrees');
  });

  it("CI tests exactly these lines, and the image's Node is one of them", () => {
    const ci = /^NODE_LINES="([\d ]+)"$/m.exec(read('.ci/run'));
    assert.ok(ci, '.ci/run sets NODE_LINES');
    assert.deepEqual(ci[1]!.split(' ').map(Number), [...SUPPORTED_NODE_LINES]);
    for (const m of read('Dockerfile').matchAll(/^FROM node:(\d+)\./gm)) assert.ok(SUPPORTED_NODE_LINES.includes(Number(m[1])), `FROM node:${m[1]}`);
  });

  it('the README names the same lines', () => {
    const readme = read('README.md');
    const lines = SUPPORTED_NODE_LINES.slice(0, -1).join(', ') + ' and ' + SUPPORTED_NODE_LINES.at(-1)!;
    assert.ok(
      readme.includes(`Node.js ${oldest} or newer (the LTS lines ${lines} are tested`),
      `README: "Node.js ${oldest} or newer (the LTS lines ${lines} are tested…"`,
    );
  });
});
