import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SERIES_PER_UNSERVED_LABEL, ModelLabels, OVERFLOW_MODEL_LABEL } from '../../otel/labels';

describe('model labels', () => {
  it('keeps at most MAX_MODEL_LABELS distinct labels and folds the rest into other, warning once', () => {
    let warnings = 0;
    const labels = new ModelLabels(3, () => warnings++);
    assert.equal(labels.label('a'), 'a');
    assert.equal(labels.label('b'), 'b');
    assert.equal(labels.label('c'), 'c');
    for (let i = 0; i < 20_000; i++) assert.equal(labels.label(`random-${i}`), OVERFLOW_MODEL_LABEL);
    assert.equal(labels.label('a'), 'a');
    assert.equal(labels.size, 3);
    assert.equal(warnings, 1);
  });

  it('details a name Ollama serves or that answered; bounds the series of any other, not of the shared labels', () => {
    const labels = new ModelLabels(200);
    labels.setServed(['served:latest']);
    assert.equal(labels.detailed('served:latest'), true);
    assert.equal(labels.detailed('junk:latest'), false);
    for (let i = 0; i < 1000; i++) assert.equal(labels.admit('served:latest', `key-${i}`), true);
    const kept = Array.from({ length: 100 }, (_, i) => labels.admit('junk:latest', `key-${i}`)).filter(Boolean).length;
    assert.equal(kept, MAX_SERIES_PER_UNSERVED_LABEL);
    assert.equal(labels.admit('junk:latest', 'key-0'), true, 'a series it has stays');
    for (let i = 0; i < 100; i++) assert.equal(labels.admit(OVERFLOW_MODEL_LABEL, `key-${i}`), true);
    assert.equal(labels.answeredOnce('junk:latest'), true);
    assert.equal(labels.answeredOnce('junk:latest'), false);
    assert.equal(labels.detailed('junk:latest'), true);
    assert.equal(labels.admit('junk:latest', 'key-99'), true, 'a detailed label is not bounded');
    assert.equal(labels.answeredOnce('served:latest'), false, 'a served name was detailed already');
  });
});
