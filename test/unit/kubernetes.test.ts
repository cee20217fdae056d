/**
 * deploy/kubernetes/, validated as `kubectl apply -k` sees it: the kustomization rendered (by
 * `kubectl kustomize` where it is installed, else by the minimal renderer below, which a test holds
 * equal to kubectl's output wherever both run), then each object checked offline against the
 * Kubernetes OpenAPI schemas as the npm packages `kubernetes-models` and
 * `@kubernetes-models/prometheus-operator` ship them: through its model's schema validator (types,
 * required fields, enums, formats), and through the TypeScript declarations generated from the same
 * schemas, whose excess-property check catches a misspelt field (the validators accept unknown
 * fields, as the API server's non-strict mode does). A deliberate typo must fail both ways.
 * The base must apply to a bare cluster: built-in kinds only, no namespace assumed, no usable
 * secret shipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

const REPO = path.resolve(__dirname, '..', '..', '..');
const DIR = path.join(REPO, 'deploy', 'kubernetes');

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
} & Record<string, unknown>;

/** The module of an apiVersion's models. */
function modelModule(apiVersion: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

type Kustomization = {
  kind: string;
  resources?: string[];
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  namespace?: string;
};

function readYamlDocs(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Manifest);
}

/**
 * The minimal kustomize this project's kustomizations need: resources (files and folders), labels
 * on metadata only (kustomize's default for `labels`), image name and tag; anything else is refused
 * so that a new feature cannot be silently left out.
 */
function render(dir: string): Manifest[] {
  const k = readYamlDocs(path.join(dir, 'kustomization.yaml'))[0] as unknown as Kustomization;
  const known = new Set(['apiVersion', 'kind', 'resources', 'labels', 'images']);
  for (const key of Object.keys(k)) assert.ok(known.has(key), `${dir}/kustomization.yaml: the minimal renderer does not know ${key}`);
  const out: Manifest[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    out.push(...(statSync(p).isDirectory() ? render(p) : readYamlDocs(p)));
  }
  for (const l of k.labels ?? []) {
    assert.ok(!l.includeSelectors && !l.includeTemplates, 'the minimal renderer labels metadata only');
    for (const m of out) m.metadata.labels = { ...(m.metadata.labels ?? {}), ...l.pairs };
  }
  for (const img of k.images ?? []) {
    for (const m of out) {
      const spec = (m.spec?.template as { spec?: { containers?: { image: string }[] } } | undefined)?.spec;
      for (const c of spec?.containers ?? []) {
        if (c.image.split(':')[0] === img.name) c.image = `${img.newName ?? img.name}:${img.newTag ?? c.image.split(':')[1] ?? 'latest'}`;
      }
    }
  }
  return out;
}

/** `kubectl kustomize DIR`, or undefined when kubectl (with kustomize v4 or later) is not installed. */
function kubectlRender(dir: string): Manifest[] | undefined {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (r.error || r.status !== 0) {
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    assert.fail(`kubectl kustomize ${dir} failed: ${r.stderr}`);
  }
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Manifest);
}

const byKindAndName = (a: Manifest, b: Manifest) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`);

/** The objects `kubectl apply -k DIR` would send. */
function rendered(dir: string): Manifest[] {
  return (kubectlRender(dir) ?? render(dir)).sort(byKindAndName);
}

const BASE = DIR;
const MONITORING = path.join(DIR, 'monitoring');

/** Runtime schema validation; the error messages, empty when valid. */
async function schemaErrors(doc: Manifest): Promise<string[]> {
  const mod = (await import(modelModule(doc.apiVersion))) as Record<string, new (d: unknown) => { validate(): void }>;
  const Model = mod[doc.kind];
  if (!Model) return [`no model for ${doc.apiVersion} ${doc.kind}`];
  try {
    new Model(doc).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/** TypeScript's check of each object as a literal of its generated interface; the diagnostics. */
function typeErrors(docs: Manifest[]): string[] {
  const file = path.join(REPO, '.k8s-manifest-check.mts');
  const lines = docs.map(
    (d, i) => `import type { I${d.kind} as T${i} } from '${modelModule(d.apiVersion)}/${d.kind}';\nexport const m${i}: T${i} = ${JSON.stringify(d)};`,
  );
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : read(f));
  const exists = host.fileExists.bind(host);
  host.fileExists = (f) => path.resolve(f) === file || exists(f);
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (path.resolve(f) === file ? ts.createSourceFile(f, source, lang) : getSource(f, lang, ...rest));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('deploy/kubernetes', () => {
  const base = rendered(BASE);
  const monitoring = rendered(MONITORING);
  const all = [...base, ...monitoring.filter((m) => m.apiVersion.startsWith('monitoring.coreos.com/'))];
  const find = (kind: string) => all.find((m) => m.kind === kind)!;

  it('renders the base to a Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler and ConfigMap, every file of base/ used', () => {
    assert.deepEqual(base.map((m) => m.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service']);
    const k = readYamlDocs(path.join(BASE, 'base', 'kustomization.yaml'))[0] as unknown as Kustomization;
    const files = readdirSync(path.join(BASE, 'base')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...k.resources!].sort(), files.sort());
  });

  it('applies to a bare cluster: built-in kinds only, no namespace assumed, no Secret shipped', async () => {
    for (const m of base) {
      assert.ok(!modelModule(m.apiVersion).startsWith('@kubernetes-models/'), `${m.kind}: needs a CRD`);
      assert.equal(m.metadata.namespace, undefined, `${m.kind} names a namespace (kubectl apply -n NS decides)`);
      assert.notEqual(m.kind, 'Namespace');
    }
    assert.ok(!base.some((m) => m.kind === 'Secret'), 'no Secret whose example keys would work as real ones');
    // The pods need the Secret the README has the user create: not optional, so they wait for it.
    const pod = (find('Deployment').spec!.template as { spec: { containers: { envFrom: { secretRef?: { name: string; optional?: boolean } }[] }[] } }).spec;
    const ref = pod.containers[0]!.envFrom.find((e) => e.secretRef)!.secretRef!;
    assert.equal(ref.name, 'ollama-otel-gateway');
    assert.notEqual(ref.optional, true);
  });

  it('adds a ServiceMonitor in the monitoring overlay, and only that, to the same base', () => {
    assert.deepEqual(
      monitoring.filter((m) => !base.some((b) => b.kind === m.kind && b.metadata.name === m.metadata.name)).map((m) => m.kind),
      ['ServiceMonitor'],
    );
    assert.deepEqual(
      readYamlDocs(path.join(MONITORING, 'podmonitor.yaml')).map((m) => m.kind),
      ['PodMonitor'],
    );
  });

  it('renders here as kubectl renders it (when kubectl is installed, the minimal renderer must agree)', (t) => {
    for (const dir of [BASE, MONITORING]) {
      const real = kubectlRender(dir);
      if (real === undefined) {
        t.skip('kubectl is not installed: the objects above were rendered by the minimal renderer');
        return;
      }
      assert.deepEqual(render(dir).sort(byKindAndName), real.sort(byKindAndName), dir);
    }
  });

  it("says in base/kustomization.yaml how to create the Secret, and the image the Deployment runs is the kustomization's", () => {
    const text = readFileSync(path.join(BASE, 'base', 'kustomization.yaml'), 'utf8');
    assert.match(text, /kubectl -n NS create secret generic ollama-otel-gateway/);
    const c = (find('Deployment').spec!.template as { spec: { containers: { image: string }[] } }).spec.containers[0]!;
    assert.equal(c.image, 'ollama-otel-gateway:0.1.0');
  });

  it('validates against the Kubernetes and Prometheus Operator schemas', async () => {
    for (const doc of [...all, ...readYamlDocs(path.join(MONITORING, 'podmonitor.yaml'))]) assert.deepEqual(await schemaErrors(doc), [], doc.kind);
  });

  it('has no field the schemas do not define (TypeScript excess-property check on the generated types)', () => {
    assert.deepEqual(typeErrors([...all, ...readYamlDocs(path.join(MONITORING, 'podmonitor.yaml'))]), []);
  });

  it('fails on a deliberate typo: a misspelt field, and a value of the wrong type', async () => {
    const d = structuredClone(find('Deployment'));
    const containers = ((d.spec!.template as Record<string, Record<string, unknown>>).spec.containers as Record<string, unknown>[])[0];
    containers.imagee = containers.image;
    delete containers.image;
    const errors = typeErrors([d]);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0], /imagee/);
    const wrong = structuredClone(find('Deployment'));
    wrong.spec!.replicas = 'two';
    assert.match((await schemaErrors(wrong)).join('\n'), /replicas must be integer/);
    const sm = structuredClone(find('ServiceMonitor'));
    (sm.spec!.endpoints as Record<string, unknown>[])[0].intervall = '15s';
    assert.match(typeErrors([sm]).join('\n'), /intervall/);
  });

  it('runs the gateway as a well-behaved replica: probes, resources, grace above SHUTDOWN_GRACE_SECONDS, non-root, read-only root', () => {
    const d = find('Deployment');
    const pod = (d.spec!.template as { spec: Record<string, unknown> }).spec as {
      terminationGracePeriodSeconds: number;
      securityContext: { runAsNonRoot: boolean };
      containers: {
        readinessProbe: { httpGet: { path: string } };
        livenessProbe: { httpGet: { path: string } };
        resources: { requests: Record<string, string> };
        securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
        envFrom: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
      }[];
    };
    const c = pod.containers[0];
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory, 'requests, which the CPU autoscaler needs');
    const grace = Number(find('ConfigMap').data!.SHUTDOWN_GRACE_SECONDS);
    assert.ok(pod.terminationGracePeriodSeconds > grace + 5, 'room for the drain and the telemetry flush');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(
      c.envFrom.map((e) => e.configMapRef?.name ?? e.secretRef?.name),
      [find('ConfigMap').metadata.name, 'ollama-otel-gateway'],
    );
    const hpa = find('HorizontalPodAutoscaler').spec as { metrics: { resource: { name: string } }[]; minReplicas: number };
    assert.equal(hpa.metrics[0].resource.name, 'cpu');
    assert.ok(hpa.minReplicas >= 2);
  });

  it('refers in env values only to variables defined before them (Kubernetes expands $(VAR) only then)', () => {
    const d = find('Deployment');
    const c = (d.spec!.template as { spec: { containers: { env: { name: string; value?: string }[] }[] } }).spec.containers[0];
    const seen = new Set<string>();
    for (const e of c.env) {
      for (const m of (e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) assert.ok(seen.has(m[1]), `${e.name} uses $(${m[1]}) before it is defined`);
      seen.add(e.name);
    }
    assert.ok(
      c.env.some((e) => /\$\(/.test(e.value ?? '')),
      'the check has something to check',
    );
  });
});
