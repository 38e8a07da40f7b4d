import type { Digest } from '../model/names.js';

const PREFIX = 'sha256:';
const WIDTH = 32;

/** The value of a lowercase hex digit, -1 for anything else. */
const hexValue = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1);

/**
 * Dense numeric ids for sha256 digests, kept as 32 raw bytes each.
 *
 * A registry of 100k tags references about 330k distinct blobs; as strings
 * with a Map to share them, that is about 50 MB of heap. Here it is 32 bytes
 * per digest plus an open-addressing table of 32-bit slots (at most half
 * full), and marking "referenced" is a byte per id.
 *
 * Every digest given must be a valid lowercase sha256 digest (`isDigest`):
 * the hex is parsed without further checks.
 */
export class DigestTable {
  private bytes = new Uint8Array(WIDTH * 1024);
  /** The same memory as 32-bit words: a digest is compared as 8 of them. */
  private words = new Uint32Array(this.bytes.buffer);
  /** id + 1 per slot; 0 is empty. */
  private slots = new Uint32Array(2048);
  private readonly scratchWords = new Uint32Array(WIDTH / 4);
  private readonly scratch = new Uint8Array(this.scratchWords.buffer);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The id of `d`, adding it if new. */
  id(d: Digest): number {
    return this.add(this.probe(d));
  }

  /** id() of the digest whose 64 hex digits are at `at` in `hex` (valid lowercase hex). */
  idHex(hex: string, at: number): number {
    this.parse(hex, at);
    return this.add(this.slotOfScratch());
  }

  /** The id in `slot` (found for the digest in scratch), or a new one for it. */
  private add(slot: number): number {
    const found = this.slots[slot] as number;
    if (found !== 0) return found - 1;
    const id = this.count++;
    if ((id + 1) * WIDTH > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
      this.words = new Uint32Array(grown.buffer);
    }
    this.bytes.set(this.scratch, id * WIDTH);
    this.slots[slot] = id + 1;
    if (this.count * 2 > this.slots.length) this.rehash();
    return id;
  }

  /** The id of `d`, or -1 when it was never added. */
  find(d: Digest): number {
    return (this.slots[this.probe(d)] as number) - 1;
  }

  /**
   * The id of the digest `sha256:<hex>`; -1 when it was never added, and -2 when `hex` is not 64
   * lowercase hex digits (so not a digest at all). For names read from the blob store: no string
   * is built for each.
   */
  findHex(hex: string): number {
    if (hex.length !== 2 * WIDTH || !this.parse(hex, 0)) return -2;
    return (this.slots[this.slotOfScratch()] as number) - 1;
  }

  /** The 64 hex digits at `at` in `s` into scratch; false when one is not a lowercase hex digit. */
  private parse(s: string, at: number): boolean {
    for (let i = 0; i < WIDTH; i++, at += 2) {
      const hi = hexValue(s.charCodeAt(at));
      const lo = hexValue(s.charCodeAt(at + 1));
      if (hi < 0 || lo < 0) return false;
      this.scratch[i] = (hi << 4) | lo;
    }
    return true;
  }

  digest(id: number): Digest {
    if (!(id >= 0 && id < this.count)) throw new RangeError(`no digest with id ${id}`);
    return `${PREFIX}${Buffer.from(this.bytes.buffer, id * WIDTH, WIDTH).toString('hex')}` as Digest;
  }

  /** The slot holding `d` (parsed into scratch), or the empty slot where it would go. */
  private probe(d: Digest): number {
    this.parse(d, PREFIX.length);
    return this.slotOfScratch();
  }

  private slotOfScratch(): number {
    const mask = this.slots.length - 1;
    const w = this.scratchWords;
    // sha256 output is uniform: its first four bytes are a good hash.
    let slot = (w[0] as number) & mask;
    for (;;) {
      const at = this.slots[slot] as number;
      if (at === 0 || this.holds(at - 1)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  /** Whether id `id` is the digest in scratch. */
  private holds(id: number): boolean {
    const w = this.scratchWords;
    const o = id * (WIDTH / 4);
    for (let i = 0; i < WIDTH / 4; i++) if (this.words[o + i] !== w[i]) return false;
    return true;
  }

  private rehash(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (const at of old) {
      if (at === 0) continue;
      this.scratch.set(this.bytes.subarray((at - 1) * WIDTH, at * WIDTH));
      this.slots[this.slotOfScratch()] = at;
    }
  }
}

/** A set of ids of one DigestTable: a byte per id. */
export class DigestMarks {
  private bits = new Uint8Array(1024);
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(id: number): void {
    if (id >= this.bits.length) {
      const grown = new Uint8Array(Math.max(id + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    if (this.bits[id] === 0) {
      this.bits[id] = 1;
      this.count++;
    }
  }

  has(id: number): boolean {
    return id >= 0 && id < this.bits.length && this.bits[id] === 1;
  }

  /** Ids in this set and not in `other`, ascending. */
  *minus(other: DigestMarks): Generator<number> {
    for (let id = 0; id < this.bits.length; id++) if (this.bits[id] === 1 && !other.has(id)) yield id;
  }
}
