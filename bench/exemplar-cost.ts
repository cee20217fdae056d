/**
 * The per-call cost of exemplars: one finished streamed call's metrics (both families, as the
 * recorder records them) on instruments made with and without the exemplar meter, the exemplar
 * window open for a sampled call; and the memory the store holds when full.
 *
 *   node --expose-gc .build/bench/exemplar-cost.js [--calls 200000]
 */
import { performance } from 'node:perf_hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { AttributeCache } from '../otel/attributes';
import type { CallOutcome } from '../otel/call';
import { recordGenAiCall, recordOllamaCall, type CallMeasures } from '../otel/call-metrics';
import { exemplarMeter, ExemplarStore, lesOf, MAX_EXEMPLAR_SERIES } from '../otel/exemplars';
import { createInstruments } from '../otel/instruments';

const calls = Number(process.argv[process.argv.indexOf('--calls') + 1]) || 200_000;
const ref = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
const outcome = {
  status: 200,
  streamed: true,
  summary: { inputTokens: 26, outputTokens: 298, evalDurationNs: 4.7e9, promptEvalDurationNs: 1.3e8, loadDurationNs: 5e6, totalDurationNs: 4.9e9 },
} as unknown as CallOutcome;

function run(withExemplars: boolean): { nsPerCall: number } {
  const provider = new MeterProvider({ readers: [new PrometheusExporter({ preventServerStart: true })] });
  const store = new ExemplarStore();
  const sdkMeter = provider.getMeter('bench');
  const ins = createInstruments(withExemplars ? exemplarMeter(sdkMeter, store) : sdkMeter, new Set(['ollama', 'gen_ai']), false);
  const cache = new AttributeCache('127.0.0.1', 11434, false);
  const models = ['llama3.2:latest', 'qwen3:8b', 'gemma3:4b', 'mistral:7b'];
  const record = (i: number) => {
    const model = models[i % models.length]!;
    const attrs = cache.get('chat', '/api/chat', model);
    const m: CallMeasures = {
      model,
      endpoint: '/api/chat',
      wallSeconds: 0.5 + (i % 97) / 10,
      ttftSeconds: 0.05 + (i % 13) / 20,
      stalls: 0,
      wasInFlight: false,
    };
    recordOllamaCall(ins.ollama!, attrs, outcome, m);
    recordGenAiCall(ins.genAi!, attrs, outcome, m);
  };
  for (let i = 0; i < 20_000; i++) store.during(withExemplars ? ref : undefined, () => record(i));
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) store.during(withExemplars ? ref : undefined, () => record(i));
  return { nsPerCall: ((performance.now() - t0) * 1e6) / calls };
}

function storeMemory(): { series: number; bytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const store = new ExemplarStore();
  const bounds = Array.from({ length: 19 }, (_, i) => i + 1);
  const les = lesOf(bounds);
  const attrs = Array.from({ length: MAX_EXEMPLAR_SERIES }, (_, i) => ({ model: `model-${i}`, endpoint: '/api/chat' }));
  store.during(ref, () => {
    for (const a of attrs) for (let v = 0.5; v < 21; v++) store.observeHistogram('ollama_response_seconds_bucket', bounds, les, v, a);
  });
  gc?.();
  const bytes = process.memoryUsage().heapUsed - before;
  if (store.entries().size === 0) throw new Error('empty store');
  return { series: MAX_EXEMPLAR_SERIES, bytes };
}

const rounds = 5;
const plain: number[] = [];
const withEx: number[] = [];
for (let r = 0; r < rounds; r++) {
  plain.push(run(false).nsPerCall);
  withEx.push(run(true).nsPerCall);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mem = storeMemory();
console.log(`metrics of one finished call (median of ${rounds} rounds of ${calls} calls):`);
console.log(`  without exemplars  ${median(plain).toFixed(0)} ns`);
console.log(`  with exemplars     ${median(withEx).toFixed(0)} ns  (+${(median(withEx) - median(plain)).toFixed(0)} ns per call)`);
console.log(`store full (${mem.series} series × 20 buckets): ${(mem.bytes / 1024 / 1024).toFixed(1)} MiB heap`);
