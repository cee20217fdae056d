/**
 * A minimal OTLP/HTTP receiver (JSON encoding) on 127.0.0.1 port 0: collects the spans and metrics
 * an exporter sends to `/v1/traces` and `/v1/metrics`, decoded into plain objects.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean; arrayValue?: { values?: AnyValue[] } };
interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** 1 internal, 2 server, 3 client */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  events: { name: string; timeNs: bigint }[];
  status: { code: number; message?: string };
  resource: Record<string, unknown>;
}

export interface ReceivedPoint {
  metric: string;
  attributes: Record<string, unknown>;
  value?: number;
  count?: number;
  sum?: number;
}

function decode(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(decode);
  return undefined;
}

function attrs(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = decode(kv.value);
  return out;
}

/** OTLP/JSON carries ids as hex, or as base64 from some encoders; normalise to hex. */
function hexId(id: string | undefined): string {
  if (!id) return '';
  return /^[0-9a-f]+$/i.test(id) && (id.length === 32 || id.length === 16) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Metric points of every export, in arrival order (cumulative temporality: the last one counts). */
  readonly points: ReceivedPoint[][] = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
      if (req.url === '/v1/traces') this.takeSpans(body);
      else if (req.url === '/v1/metrics') this.takeMetrics(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** Spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  /** Waits until `pick` returns something, polling the received data. */
  async waitFor<T>(pick: () => T | undefined, what: string, ms = 5000): Promise<T> {
    const until = Date.now() + ms;
    for (;;) {
      const v = pick();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > until) throw new Error(`OTLP receiver: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private takeSpans(body: Record<string, unknown>): void {
    for (const rs of (body.resourceSpans as Record<string, unknown>[] | undefined) ?? []) {
      const resource = attrs((rs.resource as { attributes?: KeyValue[] } | undefined)?.attributes);
      for (const ss of (rs.scopeSpans as Record<string, unknown>[] | undefined) ?? []) {
        for (const s of (ss.spans as Record<string, unknown>[] | undefined) ?? []) {
          this.spans.push({
            traceId: hexId(s.traceId as string),
            spanId: hexId(s.spanId as string),
            parentSpanId: hexId(s.parentSpanId as string | undefined),
            name: s.name as string,
            kind: s.kind as number,
            startNs: BigInt(s.startTimeUnixNano as string),
            endNs: BigInt(s.endTimeUnixNano as string),
            attributes: attrs(s.attributes as KeyValue[]),
            events: ((s.events as { name: string; timeUnixNano: string }[] | undefined) ?? []).map((e) => ({ name: e.name, timeNs: BigInt(e.timeUnixNano) })),
            status: (s.status as { code: number; message?: string } | undefined) ?? { code: 0 },
            resource,
          });
        }
      }
    }
  }

  private takeMetrics(body: Record<string, unknown>): void {
    const out: ReceivedPoint[] = [];
    for (const rm of (body.resourceMetrics as Record<string, unknown>[] | undefined) ?? []) {
      for (const sm of (rm.scopeMetrics as Record<string, unknown>[] | undefined) ?? []) {
        for (const m of (sm.metrics as Record<string, unknown>[] | undefined) ?? []) {
          const name = m.name as string;
          const data = (m.sum ?? m.gauge ?? m.histogram) as { dataPoints?: Record<string, unknown>[] } | undefined;
          for (const p of data?.dataPoints ?? []) {
            out.push({
              metric: name,
              attributes: attrs(p.attributes as KeyValue[]),
              value: p.asInt !== undefined ? Number(p.asInt) : (p.asDouble as number | undefined),
              count: p.count !== undefined ? Number(p.count) : undefined,
              sum: p.sum as number | undefined,
            });
          }
        }
      }
    }
    this.points.push(out);
  }
}
