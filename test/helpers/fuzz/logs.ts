/** The gateway's stdout: the LLM-call lines, and anything that is not JSON. */
import type { GatewayProcess } from '../process';

export class LogBooks {
  lines = 0;
  llmCalls = 0;
  nonJson = 0;
  nonJsonExamples: string[] = [];
  errorLines = new Map<string, number>();
  private partial: Buffer[] = [];

  attach(p: GatewayProcess): void {
    // runGateway's own reader JSON.parses every line and throws on the first that is not JSON (in
    // this process); this one counts them instead and keeps no huge lines (5 MB model names).
    p.child.stdout!.removeAllListeners('data');
    p.child.stdout!.on('data', (c: Buffer) => {
      let start = 0;
      let nl = c.indexOf(10, start);
      while (nl !== -1) {
        this.partial.push(c.subarray(start, nl));
        const line = this.partial.length === 1 ? this.partial[0] : Buffer.concat(this.partial);
        this.partial = [];
        this.onLine(line, p);
        start = nl + 1;
        nl = c.indexOf(10, start);
      }
      if (start < c.length) this.partial.push(Buffer.from(c.subarray(start)));
    });
  }

  private onLine(raw: Buffer, p: GatewayProcess): void {
    this.lines++;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      if (o === null || typeof o !== 'object') throw new Error('not an object');
    } catch {
      this.nonJson++;
      if (this.nonJsonExamples.length < 3) this.nonJsonExamples.push(raw.toString('utf8').slice(0, 200));
      return;
    }
    // What the LLM-call logger (src/llm-call.ts logCall) writes: one line per call carrying `model`
    // (at INFO, WARN or ERROR by outcome); its DEBUG "call detail" line also carries it.
    if (Object.prototype.hasOwnProperty.call(o, 'model') && o.msg !== 'call detail') this.llmCalls++;
    if (o.level === 'error' || o.level === 'fatal') {
      const key = String(o.msg ?? '?').slice(0, 120);
      this.errorLines.set(key, (this.errorLines.get(key) ?? 0) + 1);
    }
    p.lines.push({ msg: o.msg, level: o.level });
  }
}
