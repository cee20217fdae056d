/** The Ollama wire-format fixtures copied into `test/fixtures/` (see its README.md). */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const FIXTURES_DIR = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures');

export interface FixtureMeta {
  file: string;
  method: string;
  path: string;
  request: Record<string, unknown> | null;
  status: number;
  content_type: string;
  transfer: string;
  framing: string;
  bytes: number;
  ends_with_newline: boolean;
  flush_groups?: number[];
}

const cache = new Map<string, Buffer>();

export function fixture(file: string): Buffer {
  let b = cache.get(file);
  if (!b) {
    b = readFileSync(path.join(FIXTURES_DIR, file));
    cache.set(file, b);
  }
  return b;
}

let manifest: FixtureMeta[] | undefined;

export function fixtureManifest(): FixtureMeta[] {
  manifest ??= (JSON.parse(fixture('manifest.json').toString('utf8')) as { fixtures: FixtureMeta[] }).fixtures;
  return manifest;
}

export function fixtureMeta(file: string): FixtureMeta {
  const meta = fixtureManifest().find((m) => m.file === file);
  if (!meta) throw new Error(`no fixture ${file} in manifest.json`);
  return meta;
}
