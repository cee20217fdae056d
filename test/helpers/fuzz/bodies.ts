/** The JSON bodies of generated LLM calls: which model (known, a fault, strange, absent), and the rest of the body per route. */
import { type LLM_ROUTES } from '../../../src/routes';
import type { Rng } from './rng';

const KNOWN_MODELS = ['llama3.2', 'llama3.2:latest', 'all-minilm', 'qwen3:8b'];
/** A small pool of odd but legal names, so the label set stays bounded by MAX_MODEL_LABELS. */
const ODD_NAMES = [
  '',
  ' ',
  'llama3.2 ',
  ' llama3.2',
  'LLAMA3.2',
  'llama3.2:',
  ':latest',
  ':',
  'x:y:z',
  'a/b/c',
  'hf.co/org/repo',
  'llama3.2@sha256:abc',
  'model"quote',
  'back\\slash',
  '{{.Model}}',
  '%s%n%x',
  '🦙',
  '\u202eevil',
  'zero\u200bwidth',
  'other',
  'unknown',
  'invalid',
  '../../etc/passwd',
  '<script>',
  'a'.repeat(256),
  'ü'.repeat(200),
  '\ud800lone',
  'null',
];
const CONTROL_NAMES = ['\u0000', 'a\nb', 'tab\there', '\u007f', '\u001b[31mred', 'cr\r', 'llama3.2\u0000', '\u0001\u0002\u0003'];

function strangeModel(r: Rng): unknown {
  return r.weighted<() => unknown>([
    [6, () => r.pick(ODD_NAMES)],
    [3, () => r.pick(CONTROL_NAMES)],
    [2, () => 'm'.repeat(r.range(257, 4000))],
    [1, () => 'x'.repeat(r.range(60_000, 70_000))],
    [1, () => `fuzz-${r.hex(4)}`], // a few new names per run: the label cap
    [2, () => r.pick<unknown>([123, null, true, {}, [], ['llama3.2'], { name: 'llama3.2' }, 1e308, -0])],
  ])();
}

export function pickModel(r: Rng, route: (typeof LLM_ROUTES)[number]): { model: unknown; present: boolean } {
  const k = r.weighted<string>([
    [62, 'known'],
    [12, 'fault'],
    [22, 'strange'],
    [4, 'absent'],
  ]);
  if (k === 'absent') return { model: undefined, present: false };
  if (k === 'strange') return { model: strangeModel(r), present: true };
  if (k === 'fault') {
    // Hangs cost UPSTREAM_IDLE_TIMEOUT_SECONDS each: rarer. Big streams only where they stream.
    const f = r.weighted<string>([
      [4, 'fuzz-reset'],
      [4, 'fuzz-reset-mid'],
      [4, 'fuzz-garbage'],
      [3, 'fuzz-stall'],
      [2, 'fuzz-big'],
      [1, 'fuzz-hang'],
    ]);
    return { model: f, present: true };
  }
  return { model: route.operation === 'embeddings' ? r.pick(['all-minilm', 'all-minilm:latest', 'llama3.2']) : r.pick(KNOWN_MODELS), present: true };
}

function streamValue(r: Rng): { set: boolean; value?: unknown } {
  return r.weighted<{ set: boolean; value?: unknown }>([
    [30, { set: false }],
    [30, { set: true, value: true }],
    [30, { set: true, value: false }],
    [2, { set: true, value: 'true' }],
    [2, { set: true, value: 1 }],
    [2, { set: true, value: null }],
    [2, { set: true, value: [] }],
  ]);
}

/** A JSON body for `route`, model first (the fake picks faults from the first 512 bytes). */
export function llmBody(r: Rng, route: (typeof LLM_ROUTES)[number], model: { model: unknown; present: boolean }): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (model.present) b.model = model.model;
  const text = r.pick(['hi', 'Why is the sky blue?', 'Write a haiku.', '', 'ünïcödé 🦙', '\u0000', 'a'.repeat(r.range(1, 3000))]);
  switch (route.path) {
    case '/api/chat':
    case '/v1/chat/completions':
      b.messages = r.chance(0.95)
        ? [{ role: r.pick(['user', 'system', 'assistant', 'tool', 'x']), content: text }]
        : r.pick<unknown>([[], null, 'hi', [1, 2], [{ content: { a: 1 } }]]);
      break;
    case '/api/generate':
    case '/v1/completions':
      if (r.chance(0.95)) b.prompt = text;
      break;
    case '/api/embed':
    case '/v1/embeddings':
      b.input = r.chance(0.8) ? [text, 'b'] : text;
      break;
    case '/api/embeddings':
      b.prompt = text;
      break;
  }
  if (route.canStream) {
    const s = streamValue(r);
    if (s.set) b.stream = s.value;
    if (route.api === 'openai' && r.chance(0.3))
      b.stream_options = r.pick<unknown>([{ include_usage: true }, { include_usage: false }, {}, null, 'yes', [], { include_usage: 'yes' }]);
  }
  if (r.chance(0.15)) {
    if (route.api === 'ollama')
      b.options = r.pick<unknown>([{ temperature: 0.2, num_predict: 5 }, { temperature: 'hot' }, { stop: [1, 2] }, null, [], { seed: Number.MAX_VALUE }]);
    else
      Object.assign(
        b,
        r.pick<Record<string, unknown>>([{ temperature: 2, max_tokens: 5 }, { top_p: 'x' }, { stop: 'x' }, { seed: -1 }, { max_completion_tokens: null }]),
      );
  }
  return b;
}
