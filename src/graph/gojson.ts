import { isAscii } from 'node:buffer';

/**
 * JSON read the way Go's encoding/json reads it (the registry decodes
 * manifests with it), for the few struct shapes the registry uses.
 *
 * Where Go differs from JSON.parse, and why it matters here:
 * - object keys match struct fields case-insensitively (an exact match
 *   first, then Unicode simple folding: `LAYERS`, `Manifests`, `layer\u017f`
 *   and `\u212aey` all match), unknown keys are ignored, and every key is
 *   decoded in document order into the field it matches, so the last one wins
 *   and a repeated object or list is decoded *into* the earlier value (fields
 *   and elements the later one lacks survive);
 * - invalid UTF-8 and lone surrogate escapes become U+FFFD instead of failing;
 * - a value of the wrong type fails the whole decode (the registry then
 *   refuses the manifest and garbage-collect aborts), while `null` leaves a
 *   string, number or struct as it was and empties a list or pointer.
 *
 * Written from those documented rules (Go 1.19, what Debian's
 * docker-registry 2.8.2 is built with), not from Go's source.
 */

/** A parsed JSON value that keeps object members in order, duplicates included. */
export type JsonValue =
  | { readonly t: 'object'; readonly members: ReadonlyArray<readonly [string, JsonValue]> }
  | { readonly t: 'array'; readonly items: readonly JsonValue[] }
  | { readonly t: 'string'; readonly v: string }
  | { readonly t: 'number'; readonly raw: string }
  | { readonly t: 'bool'; readonly v: boolean }
  | { readonly t: 'null' };

export class GoJsonError extends Error {}

/** Go's nesting limit. */
const MAX_DEPTH = 10000;

const isWs = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const hexVal = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/** Decodes one UTF-8 sequence at `i` as Go's utf8.DecodeRune does: [rune, length], U+FFFD/1 when invalid. */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const c0 = b[i] as number;
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number) => {
    const c = b[i + k];
    return c !== undefined && (c & 0xc0) === 0x80 ? c & 0x3f : -1;
  };
  if (c0 >= 0xc2 && c0 <= 0xdf) {
    const c1 = cont(1);
    if (c1 >= 0) return [((c0 & 0x1f) << 6) | c1, 2];
  } else if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = cont(1);
    const c2 = cont(2);
    if (c1 >= 0 && c2 >= 0) {
      const r = ((c0 & 0x0f) << 12) | (c1 << 6) | c2;
      if (r >= 0x800 && (r < 0xd800 || r > 0xdfff)) return [r, 3];
    }
  } else if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = cont(1);
    const c2 = cont(2);
    const c3 = cont(3);
    if (c1 >= 0 && c2 >= 0 && c3 >= 0) {
      const r = ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
      if (r >= 0x10000 && r <= 0x10ffff) return [r, 4];
    }
  }
  return [0xfffd, 1];
}

/** Parses `bytes` as one JSON value with Go's syntax rules (RFC 8259, nothing after the value but whitespace). */
/** Buffer's own latin1 slicer (what toString('latin1', a, b) ends in, without its argument checks). */
type Latin1 = Buffer & { latin1Slice(start: number, end: number): string };

export function parseGoJson(input: Uint8Array): JsonValue {
  const bytes = (Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)) as Latin1;
  let i = 0;
  const n = bytes.length;
  const fail = (what: string): never => {
    throw new GoJsonError(`${what} at byte ${i}`);
  };
  const skipWs = () => {
    while (i < n && isWs(bytes[i] as number)) i++;
  };
  const literal = (word: string) => {
    for (let k = 0; k < word.length; k++) if (bytes[i + k] !== word.charCodeAt(k)) fail(`invalid literal`);
    i += word.length;
  };
  const hex4 = (at: number): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const h = hexVal(bytes[at + k] ?? -1);
      if (h < 0) {
        i = at + k;
        fail('invalid \\u escape');
      }
      v = (v << 4) | h;
    }
    return v;
  };
  // Nearly every manifest is ASCII without escapes: its strings are found with native
  // searches (the closing quote, the next backslash) instead of a loop per byte.
  const ascii = isAscii(bytes);
  let nextBackslash = bytes.indexOf(0x5c);
  const string = (): string => {
    i++; // opening quote
    const start = i;
    if (ascii) {
      if (nextBackslash !== -1 && nextBackslash < start) nextBackslash = bytes.indexOf(0x5c, start);
      const end = bytes.indexOf(0x22, start);
      if (end !== -1 && (nextBackslash === -1 || nextBackslash > end)) {
        const plain = bytes.latin1Slice(start, end);
        // eslint-disable-next-line no-control-regex
        if (!/[\x00-\x1f]/.test(plain)) {
          i = end + 1;
          return plain;
        }
      }
    }
    while (i < n) {
      const c = bytes[i] as number;
      if (c === 0x22) {
        i++;
        return bytes.latin1Slice(start, i - 1);
      }
      if (c < 0x20 || c === 0x5c || c >= 0x80) break;
      i++;
    }
    let out = bytes.latin1Slice(start, i);
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = bytes[i] as number;
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        const e = bytes[i + 1];
        const simple: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
          continue;
        }
        if (e !== 0x75) fail('invalid escape');
        let r = hex4(i + 2);
        i += 6;
        if (r >= 0xd800 && r <= 0xdfff) {
          // A surrogate counts only as the first half of a valid pair; anything else is U+FFFD.
          if (r <= 0xdbff && bytes[i] === 0x5c && bytes[i + 1] === 0x75) {
            const r2 = hex4(i + 2);
            if (r2 >= 0xdc00 && r2 <= 0xdfff) {
              out += String.fromCharCode(r, r2);
              i += 6;
              continue;
            }
          }
          r = 0xfffd;
        }
        out += String.fromCharCode(r);
        continue;
      }
      const [r, len] = decodeRune(bytes, i);
      out += String.fromCodePoint(r);
      i += len;
    }
  };
  const number = (): string => {
    const start = i;
    if (bytes[i] === 0x2d) i++;
    const digit = () => {
      const c = bytes[i];
      return c !== undefined && c >= 48 && c <= 57;
    };
    if (bytes[i] === 0x30) i++;
    else if (digit()) while (digit()) i++;
    else fail('invalid number');
    if (bytes[i] === 0x2e) {
      i++;
      if (!digit()) fail('invalid number');
      while (digit()) i++;
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i++;
      if (bytes[i] === 0x2b || bytes[i] === 0x2d) i++;
      if (!digit()) fail('invalid number');
      while (digit()) i++;
    }
    return bytes.latin1Slice(start, i);
  };
  // Containers open, innermost last: no recursion, so that 10000 levels (Go's limit) fit the
  // main thread's stack as well as a worker's bigger one (a recursive reader ran out near 6000).
  type Open = { members: Array<readonly [string, JsonValue]>; key: string; items?: undefined } | { items: JsonValue[]; members?: undefined };
  const open: Open[] = [];
  const key = (): string => {
    skipWs();
    if (bytes[i] !== 0x22) fail('expected a string key');
    const k = string();
    skipWs();
    if (bytes[i] !== 0x3a) fail("expected ':'");
    i++;
    return k;
  };
  const value = (): JsonValue => {
    for (;;) {
      // A value at the depth of the containers open.
      if (open.length > MAX_DEPTH) fail('exceeded max depth');
      skipWs();
      const c = bytes[i];
      let v: JsonValue;
      switch (c) {
        case 0x7b:
          i++;
          skipWs();
          if (bytes[i] !== 0x7d) {
            open.push({ members: [], key: key() });
            continue;
          }
          i++;
          v = { t: 'object', members: [] };
          break;
        case 0x5b:
          i++;
          skipWs();
          if (bytes[i] !== 0x5d) {
            open.push({ items: [] });
            continue;
          }
          i++;
          v = { t: 'array', items: [] };
          break;
        case 0x22:
          v = { t: 'string', v: string() };
          break;
        case 0x74:
          literal('true');
          v = { t: 'bool', v: true };
          break;
        case 0x66:
          literal('false');
          v = { t: 'bool', v: false };
          break;
        case 0x6e:
          literal('null');
          v = { t: 'null' };
          break;
        default:
          if (c === 0x2d || (c !== undefined && c >= 48 && c <= 57)) v = { t: 'number', raw: number() };
          else return fail(c === undefined ? 'unexpected end of JSON input' : 'invalid character');
      }
      // Into the containers that hold it, closing those that end here.
      for (;;) {
        const top = open[open.length - 1];
        if (top === undefined) return v;
        if (top.members !== undefined) top.members.push([top.key, v]);
        else top.items.push(v);
        skipWs();
        if (bytes[i] === 0x2c) {
          i++;
          if (top.members !== undefined) top.key = key();
          break;
        }
        if (bytes[i] === (top.members !== undefined ? 0x7d : 0x5d)) {
          i++;
          open.pop();
          v = top.members !== undefined ? { t: 'object', members: top.members } : { t: 'array', items: top.items };
          continue;
        }
        fail(top.members !== undefined ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  };
  const v = value();
  skipWs();
  if (i < n) fail('invalid character after top-level value');
  return v;
}

/** The Go types the registry's manifest structs are made of. */
export type GoType =
  | { readonly k: 'string' }
  | { readonly k: 'int' }
  | { readonly k: 'map' } // map[string]string
  | { readonly k: 'struct'; readonly fields: Readonly<Record<string, GoType>> }
  | { readonly k: 'ptr'; readonly to: GoType }
  | { readonly k: 'slice'; readonly of: GoType };

/** A Go slice: a backing array (its capacity) and a length; what lies past the length can come back. */
export interface GoSlice {
  backing: unknown[];
  len: number;
  cap: number;
}
export type GoStruct = Record<string, unknown>;

/** Per struct type: its fields as a list, and by lowercase name (built once). */
interface StructInfo {
  readonly list: ReadonlyArray<readonly [string, GoType]>;
  readonly byLower: ReadonlyMap<string, string>;
}
const structInfo = new WeakMap<object, StructInfo>();
function info(fields: Readonly<Record<string, GoType>>): StructInfo {
  let i = structInfo.get(fields);
  if (i === undefined) {
    const list = Object.entries(fields);
    i = { list, byLower: new Map(list.map(([name]) => [name.toLowerCase(), name])) };
    structInfo.set(fields, i);
  }
  return i;
}

export function zero(t: GoType): unknown {
  switch (t.k) {
    case 'string':
      return '';
    case 'int':
      return 0n;
    case 'struct': {
      const out: GoStruct = {};
      for (const [name, ft] of info(t.fields).list) out[name] = zero(ft);
      return out;
    }
    default:
      return null; // nil map, pointer, slice
  }
}

/** The elements of a decoded slice (empty for nil). */
export function elements(s: unknown, of: GoType): unknown[] {
  const slice = s as GoSlice | null;
  const out: unknown[] = [];
  for (let i = 0; slice !== null && i < slice.len; i++) out.push(slice.backing[i] ?? zero(of));
  return out;
}

/**
 * Go's rune folding reduced to what matters for ASCII field names: the only
 * non-ASCII runes whose simple-fold orbit holds an ASCII letter are U+017F
 * (long s, with s/S) and U+212A (Kelvin sign, with k/K).
 */
function foldKey(key: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(key)) return key.toLowerCase();
  const mapped = key.replace(/\u017f/g, 's').replace(/\u212a/g, 'k');
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(mapped) ? mapped.toLowerCase() : undefined;
}

function fieldFor(fields: Readonly<Record<string, GoType>>, key: string): string | undefined {
  if (Object.hasOwn(fields, key)) return key;
  const folded = foldKey(key);
  return folded === undefined ? undefined : info(fields).byLower.get(folded);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Where the decoder is (field names and indices), for the message of a type mismatch; reset per decode. */
const path: Array<string | number> = [];
const where = () => path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');

/** Decodes `v` as a fresh value of type `t`; throws GoJsonError on a type mismatch (Go's Unmarshal then fails). */
export function decodeGo(v: JsonValue, t: GoType): unknown {
  path.length = 0;
  return decodeInto(v, t, zero(t));
}

/** Decodes `v` into `into` (the current Go value of type `t`) and returns the new value. */
function treeMismatch(v: JsonValue, t: GoType): never {
  throw new GoJsonError(`cannot unmarshal ${v.t} into ${where()} (${t.k === 'ptr' ? 'struct' : t.k})`);
}

function decodeInto(v: JsonValue, t: GoType, into: unknown): unknown {
  if (v.t === 'null') return t.k === 'map' || t.k === 'ptr' || t.k === 'slice' ? null : into;
  switch (t.k) {
    case 'string':
      return v.t === 'string' ? v.v : treeMismatch(v, t);
    case 'int': {
      if (v.t !== 'number' || !/^-?\d+$/.test(v.raw)) return treeMismatch(v, t);
      const n = BigInt(v.raw);
      return n < INT64_MIN || n > INT64_MAX ? treeMismatch(v, t) : n;
    }
    case 'map':
      if (v.t !== 'object') return treeMismatch(v, t);
      for (const [k, m] of v.members) {
        if (m.t === 'string' || m.t === 'null') continue;
        path.push(k);
        decodeInto(m, { k: 'string' }, '');
      }
      return into ?? {};
    case 'ptr':
      if (v.t !== 'object') return treeMismatch(v, t);
      return decodeInto(v, t.to, into ?? zero(t.to));
    case 'struct': {
      if (v.t !== 'object') return treeMismatch(v, t);
      const s = into as GoStruct;
      for (const [key, m] of v.members) {
        const name = fieldFor(t.fields, key);
        if (name === undefined) continue;
        path.push(name);
        s[name] = decodeInto(m, t.fields[name] as GoType, s[name]);
        path.pop();
      }
      return s;
    }
    case 'slice': {
      if (v.t !== 'array') return treeMismatch(v, t);
      if (v.items.length === 0) return { backing: [], len: 0, cap: 0 } satisfies GoSlice;
      let s = (into as GoSlice | null) ?? { backing: [], len: 0, cap: 0 };
      // backing[k] undefined stands for a zero element.
      for (let i = 0; i < v.items.length; i++) {
        if (i >= s.cap) {
          // Go 1.19 grows by half (at least 4) and copies only the first len elements.
          const cap = Math.max(4, s.cap + Math.floor(s.cap / 2));
          s = { backing: s.backing.slice(0, s.len), len: s.len, cap };
        }
        if (i >= s.len) s.len = i + 1;
        path.push(i);
        s.backing[i] = decodeInto(v.items[i] as JsonValue, t.of, s.backing[i] ?? zero(t.of));
        path.pop();
      }
      s.len = v.items.length;
      return s;
    }
  }
}

// ------------------------------------------------------------- fast path

const isDigit = (c: number) => c >= 48 && c <= 57;

/**
 * JSON.parse (native, several times faster) where it provably reads what Go
 * reads: ASCII without a backslash (no escapes, no invalid UTF-8), no number
 * with a fraction, exponent or more than 15 digits, and no object key that
 * spells a field of `known` (lowercase -> exact name) in another case or
 * repeats one in the same object. Anything else: undefined, and the caller
 * takes the exact path.
 */
export function parsePlainJson(input: Uint8Array, known: ReadonlyMap<string, string>): { value: unknown } | undefined {
  const bytes = (Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)) as Latin1;
  if (!isAscii(bytes) || bytes.indexOf(0x5c) !== -1) return undefined;
  const n = bytes.length;
  // The known keys seen in each open object, made when the first is met (most objects have none or few).
  const objects: Array<string[] | undefined> = [];
  let depth = 0;
  // Between strings: braces open and close objects; numbers must be plain integers.
  const structure = (from: number, to: number): boolean => {
    let digits = 0;
    for (let k = from; k < to; k++) {
      const c = bytes[k] as number;
      if (c <= 0x20) {
        digits = 0;
        continue;
      }
      if (isDigit(c)) {
        if (++digits > 15) return false;
        continue;
      }
      if ((c === 0x65 || c === 0x45) && digits > 0) return false;
      digits = 0;
      if (c === 0x2e) return false;
      if (c === 0x7b) {
        objects.push(undefined);
        if (++depth > 1000) return false;
      } else if (c === 0x5b) {
        // Deep nesting: Go's depth limit and the stack are the exact path's business.
        if (++depth > 1000) return false;
      } else if (c === 0x7d) {
        objects.pop();
        depth--;
      } else if (c === 0x5d) depth--;
    }
    return true;
  };
  // Without backslashes every quote delimits a string: native searches find each one exactly.
  let pos = 0;
  for (;;) {
    const open = bytes.indexOf(0x22, pos);
    if (!structure(pos, open === -1 ? n : open)) return undefined;
    if (open === -1) break;
    const close = bytes.indexOf(0x22, open + 1);
    if (close === -1) return undefined;
    pos = close + 1;
    let j = pos;
    while (j < n && isWs(bytes[j] as number)) j++;
    if (bytes[j] !== 0x3a) continue;
    const key = bytes.latin1Slice(open + 1, close);
    const exact = known.get(key.toLowerCase());
    if (exact === undefined) continue;
    if (exact !== key || objects.length === 0) return undefined;
    const members = objects[objects.length - 1];
    if (members === undefined) objects[objects.length - 1] = [key];
    else if (members.includes(key)) return undefined;
    else members.push(key);
  }
  const text = bytes.latin1Slice(0, n);
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const kindOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v === 'boolean' ? 'bool' : typeof v);

/**
 * decodeGo for a value from parsePlainJson: no key repeats or differs in case
 * from its field there, so nothing is decoded into an earlier value.
 */
export function decodePlain(v: unknown, t: GoType): unknown {
  path.length = 0;
  return plain(v, t, zero(t));
}

function plainMismatch(v: unknown, t: GoType): never {
  throw new GoJsonError(`cannot unmarshal ${kindOf(v)} into ${where()} (${t.k === 'ptr' ? 'struct' : t.k})`);
}

function plain(v: unknown, t: GoType, into: unknown): unknown {
  if (v === null) return t.k === 'map' || t.k === 'ptr' || t.k === 'slice' ? null : into;
  switch (t.k) {
    case 'string':
      return typeof v === 'string' ? v : plainMismatch(v, t);
    case 'int':
      // parsePlainJson let through only integers of at most 15 digits.
      return typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : plainMismatch(v, t);
    case 'map':
      if (!isPlainObject(v)) return plainMismatch(v, t);
      for (const k of Object.keys(v)) {
        const m = v[k];
        if (typeof m === 'string' || m === null) continue;
        path.push(k);
        plain(m, { k: 'string' }, '');
      }
      return into ?? {};
    case 'ptr':
      if (!isPlainObject(v)) return plainMismatch(v, t);
      return plain(v, t.to, into ?? zero(t.to));
    case 'struct': {
      if (!isPlainObject(v)) return plainMismatch(v, t);
      const s = into as GoStruct;
      for (const name of Object.keys(v)) {
        const ft = Object.hasOwn(t.fields, name) ? t.fields[name] : undefined;
        if (ft === undefined) continue;
        path.push(name);
        s[name] = plain(v[name], ft, s[name]);
        path.pop();
      }
      return s;
    }
    case 'slice': {
      if (!Array.isArray(v)) return plainMismatch(v, t);
      const backing: unknown[] = [];
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        backing.push(plain(v[i], t.of, zero(t.of)));
        path.pop();
      }
      return { backing, len: v.length, cap: v.length } satisfies GoSlice;
    }
  }
}
