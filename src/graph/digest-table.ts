import type { Digest } from '../model/names.js';

const PREFIX = 'sha256:';
const WIDTH = 32;

/** The value of a lowercase hex digit's char code. */
const nibble = (c: number): number => (c <= 57 ? c - 48 : c - 87);

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
  private bytes = Buffer.alloc(WIDTH * 1024);
  /** id + 1 per slot; 0 is empty. */
  private slots = new Uint32Array(2048);
  private readonly scratch = Buffer.alloc(WIDTH);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The id of `d`, adding it if new. */
  id(d: Digest): number {
    const slot = this.probe(d);
    const found = this.slots[slot] as number;
    if (found !== 0) return found - 1;
    const id = this.count++;
    if ((id + 1) * WIDTH > this.bytes.length) {
      const grown = Buffer.alloc(this.bytes.length * 2);
      this.bytes.copy(grown);
      this.bytes = grown;
    }
    this.scratch.copy(this.bytes, id * WIDTH);
    this.slots[slot] = id + 1;
    if (this.count * 2 > this.slots.length) this.rehash();
    return id;
  }

  /** The id of `d`, or -1 when it was never added. */
  find(d: Digest): number {
    return (this.slots[this.probe(d)] as number) - 1;
  }

  digest(id: number): Digest {
    if (!(id >= 0 && id < this.count)) throw new RangeError(`no digest with id ${id}`);
    return `${PREFIX}${this.bytes.toString('hex', id * WIDTH, (id + 1) * WIDTH)}` as Digest;
  }

  /** The slot holding `d` (parsed into scratch), or the empty slot where it would go. */
  private probe(d: Digest): number {
    for (let i = 0, at = PREFIX.length; i < WIDTH; i++, at += 2) {
      this.scratch[i] = (nibble(d.charCodeAt(at)) << 4) | nibble(d.charCodeAt(at + 1));
    }
    return this.slotOfScratch();
  }

  private slotOfScratch(): number {
    const mask = this.slots.length - 1;
    // sha256 output is uniform: its first four bytes are a good hash.
    let slot = this.scratch.readUInt32LE(0) & mask;
    for (;;) {
      const at = this.slots[slot] as number;
      if (at === 0 || this.bytes.compare(this.scratch, 0, WIDTH, (at - 1) * WIDTH, at * WIDTH) === 0) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private rehash(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (const at of old) {
      if (at === 0) continue;
      this.bytes.copy(this.scratch, 0, (at - 1) * WIDTH, at * WIDTH);
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
