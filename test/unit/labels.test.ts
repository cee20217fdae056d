import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelLabels, OVERFLOW_MODEL_LABEL } from '../../otel/labels';

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
});
