/**
 * The gateway reads every request body as Go's encoding/json does: thousands of seeded bodies per
 * endpoint are read by the gateway and by a Go program (`test/go-reader/main.go`, Ollama's request
 * struct shapes), and both readings must be equal. Then every streamed OpenAI body gets the
 * include_usage splice, and Go must read `include_usage: true` and everything else unchanged.
 * Fails (never skips) without `go` under CI=true; `.ci/run` installs golang-go.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { extractRequest } from '../../src/request/extract';
import { withIncludeUsage } from '../../src/request/include-usage';
import { readRequest, REQUEST_SHAPES } from '../../src/request/read';
import { LLM_ROUTES, type LlmRoute } from '../../src/routes';
import { BodyGen, rng } from '../helpers/go-bodies';
import { buildGoReader, gatewayView, goRead } from '../helpers/go-reader';
import { requireTool } from '../helpers/tools';

const BODIES_PER_ENDPOINT = 1000;
const SEED = 20_261_207;

const routes = LLM_ROUTES.filter((r) => REQUEST_SHAPES[r.path] !== undefined);

/** Names a body may carry: the endpoint's fields, and a few others. */
const namesOf = (route: LlmRoute) => [...REQUEST_SHAPES[route.path]!.map(([n]) => n), 'stream_options', 'stream', 'x'];

function generate(): { route: LlmRoute; path: string; body: Buffer }[] {
  const gen = new BodyGen(rng(SEED));
  const out: { route: LlmRoute; path: string; body: Buffer }[] = [];
  for (const route of routes) for (let i = 0; i < BODIES_PER_ENDPOINT; i++) out.push({ route, path: route.path, body: gen.body(namesOf(route)) });
  // The bypasses found by hand, each once per endpoint.
  for (const route of routes) {
    for (const text of [
      '{"model":"a","Model":"b","model":"a"}',
      '{"model":"a","stream":true,"stream_options":{"include_usage":true,"Include_Usage":false}}',
      '{"model":"a","stream":true,"STREAM_OPTIONS":{"INCLUDE_USAGE":false}}',
      '{"model":"a","ſtream":true}',
      '{"model":"a"} {"model":"b"}',
      '{"model":"a","stream":true,"stream_options":{"include_usage":true},"stream_options":null}',
      '{"model":"a","options":{"num_ctx":4096,"NUM_CTX":1}}',
      '{"model":"a","options":{"num_ctx":4096},"options":{"seed":1}}',
      '{"model":"a","messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}],"messages":[{"content":"z"}]}',
      '{"model":"a","messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}],"messages":[],"messages":[{},{}]}',
    ])
      out.push({ route, path: route.path, body: Buffer.from(text) });
  }
  return out;
}

describe('request bodies read as Go reads them', () => {
  let reader: { bin: string; cleanup: () => void } | undefined;
  let skip: string | false = false;

  before(() => {
    skip = requireTool('go', 'golang-go');
    if (!skip) reader = buildGoReader();
  });
  after(() => reader?.cleanup());

  it('gives the same reading as Go for every generated body of every endpoint', (t) => {
    if (skip) return t.skip(skip);
    const cases = generate();
    const go = goRead(reader!.bin, cases);
    let mismatches = 0;
    const first: string[] = [];
    let accepted = 0;
    for (let i = 0; i < cases.length; i++) {
      const { route, body } = cases[i]!;
      const mine = gatewayView(route.path, body, readRequest(route, body));
      if (mine.ok) accepted++;
      try {
        assert.deepEqual(mine, go[i]);
      } catch {
        mismatches++;
        if (first.length < 5)
          first.push(
            `${route.path} ${JSON.stringify(body.toString('latin1').slice(0, 300))}\n  gateway: ${JSON.stringify(mine)}\n  go:      ${JSON.stringify(go[i])}`,
          );
      }
    }
    assert.equal(mismatches, 0, `${mismatches} of ${cases.length} bodies read differently:\n${first.join('\n')}`);
    // The generator reaches both sides of Go's verdict.
    assert.ok(accepted > cases.length / 4 && accepted < cases.length - cases.length / 10, `${accepted} of ${cases.length} accepted`);
  });

  it('after the include_usage splice, Go reads include_usage true and every other field unchanged', (t) => {
    if (skip) return t.skip(skip);
    const spliced: { route: LlmRoute; path: string; body: Buffer; before: Record<string, unknown> }[] = [];
    for (const c of generate()) {
      if (c.route.events !== 'openai' || !c.route.canStream) continue;
      const info = extractRequest(c.route, c.body);
      if (!info.stream || info.includeUsage) continue;
      const out = withIncludeUsage(c.body, info);
      assert.ok(out, `no splice for ${c.body.toString('latin1')}`);
      spliced.push({ ...c, body: out, before: gatewayView(c.path, c.body, info.reading) });
    }
    assert.ok(spliced.length > 100, `only ${spliced.length} streamed bodies to splice`);
    const go = goRead(reader!.bin, spliced);
    for (let i = 0; i < spliced.length; i++) {
      const s = spliced[i]!;
      assert.deepEqual(go[i], { ...s.before, include_usage: true }, s.body.toString('latin1'));
    }
  });
});
