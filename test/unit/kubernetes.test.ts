/**
 * deploy/kubernetes/, validated offline against the Kubernetes OpenAPI schemas as the npm packages
 * `kubernetes-models` and `@kubernetes-models/prometheus-operator` ship them: each object through
 * its model's schema validator (types, required fields, enums, formats), and through the
 * TypeScript declarations generated from the same schemas, whose excess-property check catches a
 * misspelt field (the validators accept unknown fields, as the API server's non-strict mode does).
 * A deliberate typo must fail both ways.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

const REPO = path.resolve(__dirname, '..', '..', '..');
const DIR = path.join(REPO, 'deploy', 'kubernetes');

type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown>; data?: Record<string, string> } & Record<
  string,
  unknown
>;

/** The module of an apiVersion's models. */
function modelModule(apiVersion: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

function manifests(): { file: string; doc: Manifest }[] {
  const out: { file: string; doc: Manifest }[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8'))) out.push({ file, doc: d.toJS() as Manifest });
  }
  return out;
}

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
  const all = manifests();
  const find = (kind: string) => all.find((m) => m.doc.kind === kind)!.doc;

  it('holds a Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler, ServiceMonitor, PodMonitor, ConfigMap and Secret, all in the kustomization', () => {
    assert.deepEqual(all.map((m) => m.doc.kind).sort(), [
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
      'PodMonitor',
      'Secret',
      'Service',
      'ServiceMonitor',
    ]);
    const k = parseAllDocuments(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0].toJS() as { kind: string; resources: string[] };
    assert.equal(k.kind, 'Kustomization');
    assert.deepEqual([...k.resources].sort(), [...new Set(all.map((m) => m.file))].sort());
  });

  it('validates against the Kubernetes and Prometheus Operator schemas', async () => {
    for (const { file, doc } of all) assert.deepEqual(await schemaErrors(doc), [], `${file}: ${doc.kind}`);
  });

  it('has no field the schemas do not define (TypeScript excess-property check on the generated types)', () => {
    assert.deepEqual(typeErrors(all.map((m) => m.doc)), []);
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
      [find('ConfigMap').metadata.name, find('Secret').metadata.name],
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
