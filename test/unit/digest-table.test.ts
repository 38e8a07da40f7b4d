import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DigestMarks, DigestTable } from '../../src/graph/digest-table.js';
import type { Digest } from '../../src/model/names.js';

const digestOf = (i: number) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}` as Digest;

describe('DigestTable', () => {
  it('gives dense ids, the same id for the same digest, and the digest back, across growth', () => {
    const table = new DigestTable();
    const n = 20000; // several doublings of the byte store and the slot table
    for (let i = 0; i < n; i++) expect(table.id(digestOf(i))).toBe(i);
    expect(table.size).toBe(n);
    for (let i = 0; i < n; i += 997) {
      expect(table.id(digestOf(i))).toBe(i);
      expect(table.find(digestOf(i))).toBe(i);
      expect(table.digest(i)).toBe(digestOf(i));
    }
    expect(table.size).toBe(n);
    expect(table.find(digestOf(n))).toBe(-1);
    expect(() => table.digest(n)).toThrow(RangeError);
  });

  it('tells apart digests whose first bytes (the hash) are equal', () => {
    const table = new DigestTable();
    const a = `sha256:${'ab'.repeat(4)}${'0'.repeat(56)}` as Digest;
    const b = `sha256:${'ab'.repeat(4)}${'0'.repeat(55)}1` as Digest;
    const c = `sha256:${'ab'.repeat(4)}${'f'.repeat(56)}` as Digest;
    expect([table.id(a), table.id(b), table.id(c)]).toEqual([0, 1, 2]);
    expect([table.find(c), table.find(b), table.find(a)]).toEqual([2, 1, 0]);
    expect(table.digest(1)).toBe(b);
  });
});

describe('DigestMarks', () => {
  it('is a set of ids; minus yields ascending ids not in the other set', () => {
    const a = new DigestMarks();
    const b = new DigestMarks();
    for (const id of [5, 3000, 1, 5]) a.add(id);
    b.add(3000);
    b.add(7);
    expect(a.size).toBe(3);
    expect([a.has(5), a.has(7), a.has(-1), a.has(1 << 20)]).toEqual([true, false, false, false]);
    expect([...a.minus(b)]).toEqual([1, 5]);
  });
});
