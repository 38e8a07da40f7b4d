import { createHash, randomBytes } from 'node:crypto';
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

describe('DigestTable.findHex', () => {
  const hexOf = (d: Digest) => d.slice('sha256:'.length);

  it('is -2 for anything but 64 lowercase hex digits, whatever the table holds', () => {
    const table = new DigestTable();
    const d = digestOf(1);
    table.id(d);
    const hex = hexOf(d);
    expect(table.findHex(hex)).toBe(0);
    const cases: Record<string, string> = {
      'upper case': hex.toUpperCase(),
      'one upper-case digit': `${hex.slice(0, 10)}${(hex[10] as string) === 'a' ? 'A' : 'F'}${hex.slice(11)}`,
      '63 digits': hex.slice(0, 63),
      '65 digits': `${hex}0`,
      'g (past f)': `${hex.slice(0, 63)}g`,
      "'/' (before 0)": `/${hex.slice(1)}`,
      "':' (after 9)": `${hex.slice(0, 32)}:${hex.slice(33)}`,
      "'`' (before a)": `${hex.slice(0, 63)}\``,
      'a space': ` ${hex.slice(1)}`,
      'with its prefix': d,
      'empty': '',
      'non-ASCII': `${hex.slice(0, 63)}\u00e9`,
    };
    for (const [name, s] of Object.entries(cases)) expect(table.findHex(s), name).toBe(-2);
  });

  it('is -1 for 64 hex digits never added, the id for those added, as find says', () => {
    const table = new DigestTable();
    expect(table.findHex('0'.repeat(64))).toBe(-1);
    for (let i = 0; i < 10; i++) table.id(digestOf(i));
    expect(table.findHex(hexOf(digestOf(10)))).toBe(-1);
    // The same first words as a digest held (the slot's hash), a different last digit.
    const near = `${hexOf(digestOf(3)).slice(0, 63)}${hexOf(digestOf(3)).endsWith('0') ? '1' : '0'}`;
    expect(table.findHex(near)).toBe(-1);
    for (let i = 0; i < 10; i++) expect(table.findHex(hexOf(digestOf(i)))).toBe(table.find(digestOf(i)));
    expect(table.findHex(hexOf(digestOf(7)))).toBe(7);
  });

  it('ids stay right across growth and rehash: id, find, findHex and digest agree for 5,000 random digests', () => {
    const table = new DigestTable();
    const digests: Digest[] = [];
    for (let i = 0; i < 5000; i++) {
      const d = `sha256:${randomBytes(32).toString('hex')}` as Digest;
      digests.push(d);
      expect(table.id(d)).toBe(i);
      // The newest and an early one, checked as the table grows (and rehashes).
      expect(table.findHex(hexOf(d))).toBe(i);
      expect(table.findHex(hexOf(digests[i >> 1] as Digest))).toBe(i >> 1);
    }
    expect(table.size).toBe(5000);
    for (let i = 0; i < digests.length; i++) {
      const d = digests[i] as Digest;
      expect(table.find(d)).toBe(i);
      expect(table.findHex(hexOf(d))).toBe(i);
      expect(table.digest(i)).toBe(d);
      expect(table.id(d)).toBe(i);
    }
    expect(table.size).toBe(5000);
    // Digests that differ from held ones in one word only are not found.
    for (let i = 0; i < 200; i++) {
      const hex = hexOf(digests[i] as Digest);
      for (const word of [0, 3, 7]) {
        const at = word * 8 + 7;
        const other = `${hex.slice(0, at)}${hex[at] === 'f' ? 'e' : 'f'}${hex.slice(at + 1)}`;
        if (digests.includes(`sha256:${other}` as Digest)) continue;
        expect(table.findHex(other)).toBe(-1);
        expect(table.find(`sha256:${other}` as Digest)).toBe(-1);
      }
    }
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
