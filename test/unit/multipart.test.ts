/**
 * The model of a multipart form, as Go's `ParseMultipartForm` + `FormValue("model")` give it to
 * Ollama, or a refusal where Go would read the form otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formModel, MAX_FORM_PARTS } from '../../src/request/multipart';

const B = 'bnd';
const CT = `multipart/form-data; boundary=${B}`;
const part = (disposition: string, value: string, extra = '') => `--${B}\r\nContent-Disposition: ${disposition}\r\n${extra}\r\n${value}\r\n`;
const body = (...parts: string[]) => Buffer.from(parts.join('') + `--${B}--\r\n`);
const model = (contentType: string, query: string, b: Buffer) => {
  const r = formModel(contentType, query, b);
  return r.ok ? r.model : `refused: ${r.message}`;
};

describe('the model of a multipart form', () => {
  it('is the first model field that is not a file', () => {
    const b = body(
      part('form-data; name="model"; filename="m.txt"', 'from-a-file'),
      part('form-data; name="Model"', 'other-case'),
      part('form-data; name="model"', 'llama3.2'),
      part('form-data; name="model"', 'second'),
    );
    assert.equal(model(CT, '', b), 'llama3.2');
  });

  it('reads an empty filename as no file, parameters in any case and quoting, headers in any case', () => {
    assert.equal(model(CT, '', body(part('form-data; NAME=model; filename=""', 'a'))), 'a');
    assert.equal(model(CT, '', body(`--${B}\r\ncontent-disposition: FORM-DATA; name="mo\\del"\r\n\r\nb\r\n`)), 'b');
  });

  it('takes a preamble, padding after a delimiter, parts without headers, and an empty value', () => {
    const b = Buffer.from(`preamble\r\n--${B} \t\r\n\r\nno headers\r\n--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\n\r\n--${B}--`);
    assert.equal(model(CT, '', b), 'refused: model is required');
    const c = Buffer.from(`preamble\r\n--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\nqwen3:8b\r\n--${B}--epilogue`);
    assert.equal(model(`Multipart/Form-Data; boundary="${B}"`, '', c), 'qwen3:8b');
  });

  it('is the query’s model first, as Go’s Request.Form has it', () => {
    const b = body(part('form-data; name="model"', 'llama3.2'));
    assert.equal(model(CT, 'x=1&model=qwen3%3A8b&model=z', b), 'qwen3:8b');
    assert.equal(model(CT, 'model=', b), 'refused: model is required');
    assert.match(model(CT, 'model=a;b', b), /^refused: failed to parse/);
    assert.match(model(CT, 'model=%zz', b), /^refused: failed to parse/);
  });

  it('refuses what Go reads otherwise or not at all', () => {
    const ok = part('form-data; name="model"', 'llama3.2');
    for (const [what, contentType, b] of [
      ['a duplicate boundary parameter', `${CT}; boundary=${B}`, body(ok)],
      ['a boundary over 70 characters', `multipart/form-data; boundary=${'b'.repeat(71)}`, body(ok)],
      ['a folded header', CT, body(part('form-data;\r\n name="model"', 'llama3.2'))],
      ['two dispositions', CT, body(part('form-data; name="model"', 'llama3.2', 'Content-Disposition: form-data; name="x"\r\n'))],
      ['a duplicate parameter', CT, body(part('form-data; name="a"; name="model"', 'llama3.2'))],
      ['an unparsable disposition', CT, body(part('form-data; name', 'llama3.2'))],
      [
        'a model that is not UTF-8',
        CT,
        Buffer.concat([Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\n`), Buffer.from([0xff, 0xfe]), Buffer.from(`\r\n--${B}--`)]),
      ],
      ['a delimiter followed by other bytes', CT, Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\nllama3.2\r\n--${B}x\r\n--${B}--`)],
      ['a model field over 4 KiB', CT, body(part('form-data; name="model"', 'm'.repeat(4097)))],
    ] as const) {
      assert.match(model(contentType, '', b), /^refused: failed to parse multipart form: /, what);
    }
  });

  it('takes at most the parts Go takes, in time linear in the body', () => {
    const filler = part('form-data; name="f"', 'x');
    assert.equal(model(CT, '', body(...Array<string>(MAX_FORM_PARTS - 1).fill(filler), part('form-data; name="model"', 'm'))), 'm');
    assert.equal(
      model(CT, '', body(...Array<string>(MAX_FORM_PARTS).fill(filler), part('form-data; name="model"', 'm'))),
      'refused: failed to parse multipart form: multipart: too many parts',
    );
    // A file full of near-delimiters is skipped by one search per part.
    const audio = `\r\n--${B.slice(0, 2)}`.repeat(200_000);
    assert.equal(model(CT, '', body(part('form-data; name="file"; filename="a.wav"', audio), part('form-data; name="model"', 'late'))), 'late');
  });
});
