import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { json } from '../../src/cli/session.js';

// The chunked writer must print exactly what JSON.stringify(value, null, 2) prints.
const cases: Array<[string, unknown]> = [
  ['nested arrays and objects, escapes, undefined members', { a: 1, b: [1, { x: [1, 2], y: 'q\n"' }], c: [], d: {}, e: { f: [{ g: null }] }, u: undefined, s: 'x' }],
  ['an empty object', {}],
  ['an empty array member', { tags: [] }],
  ['arrays of arrays', { t: [[1, 2], [3]] }],
  ['many entries (crosses the chunk size)', { tags: Array.from({ length: 5000 }, (_, i) => ({ repository: 'team/app', tag: `t${i}`, reason: 'older than 30d' })) }],
];

describe('json output', () => {
  it.each(cases)('%s', (_name, value) => {
    const chunks: string[] = [];
    json({ stdout: { write: (s: string) => chunks.push(s) } } as unknown as CliDeps, value);
    expect(chunks.join('')).toBe(`${JSON.stringify(value, null, 2)}\n`);
  });
});
