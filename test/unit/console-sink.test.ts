/**
 * The recorder feeds the console's history from the call it records: in flight while the call
 * runs, and at the end with the trace id of its span when the span records (never otherwise),
 * and never any text, even with content capture on.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { metrics, trace, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { History } from '../../otel/history/history';
import { createInstruments } from '../../otel/instruments';
import { ModelLabels } from '../../otel/labels';
import { Telemetry } from '../../otel/recorder';

function telemetry(tracer: Tracer, history: History): Telemetry {
  const instruments = createInstruments(metrics.getMeter('test'), new Set(['ollama', 'gen_ai']), false);
  const tracing = { tracer, captureContent: true, maxCaptureChars: 1000, serverAddress: '127.0.0.1', serverPort: 11434 };
  return new Telemetry(instruments, new ModelLabels(10), tracing, { stallMs: 2000 }, undefined, [], history);
}

function oneCall(t: Telemetry): void {
  const rec = t.begin('chat', '/api/chat', performance.now());
  rec.setRequest({
    model: 'llama3.2:latest',
    requestModel: 'llama3.2',
    stream: true,
    params: {},
    body: { messages: [{ role: 'user', content: 'secret prompt' }] },
  });
  rec.finish({ status: 200, streamed: true, summary: { outputTokens: 3, outputText: 'secret answer', totalDurationNs: 1e6 } }, performance.now());
}

describe('the console sink', () => {
  it('records the trace id of a recorded span, counts the call in flight until it ends, and keeps no text', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const history = new History();
    const t = telemetry(provider.getTracer('test'), history);
    const rec = t.begin('chat', '/api/chat', performance.now());
    rec.setRequest({ model: 'llama3.2:latest', requestModel: 'llama3.2', stream: true, params: {}, body: undefined });
    assert.equal(history.snapshot().models[0]!.inFlight, 1);
    rec.finish({ status: 200, streamed: true }, performance.now());
    assert.equal(history.snapshot().models[0]!.inFlight, 0);
    const [span] = exporter.getFinishedSpans();
    assert.equal(history.snapshot().recent[0]!.traceId, span!.spanContext().traceId);

    oneCall(t);
    const text = JSON.stringify(history.snapshot());
    assert.ok(!text.includes('secret'), 'no prompt or answer text, even with capture on');
  });

  it('records no trace id when tracing is off', () => {
    const history = new History();
    oneCall(telemetry(trace.getTracer('noop'), history));
    assert.equal(history.snapshot().recent[0]!.traceId, undefined);
    assert.equal(history.snapshot().models[0]!.totals.requests, 1);
  });
});
