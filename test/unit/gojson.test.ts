import { describe, expect, it } from 'vitest';
import { MEDIA, parseManifest, type ManifestRefs } from '../../src/graph/manifest.js';
import { parseGoJson, parsePlainJson } from '../../src/graph/gojson.js';
import type { Digest } from '../../src/model/names.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const [A, B, C, E] = [d('a'), d('b'), d('c'), d('e')];
const DM = MEDIA.dockerManifest;
const DL = MEDIA.dockerList;

const refsOf = (text: string | Buffer): ManifestRefs => {
  const r = parseManifest(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  if (!r.ok) throw new Error(`expected a manifest, got problem: ${r.problem}`);
  return r.refs;
};

/** Manifests written as raw JSON text: the cases are about spelling, which JSON.stringify would normalize. */
describe("parseManifest follows Go's encoding/json (what the registry and garbage-collect read)", () => {
  const cases: Array<[name: string, text: string, expected: Partial<ManifestRefs>]> = [
    ['index children under "Manifests"', `{"schemaVersion":2,"mediaType":"${DL}","Manifests":[{"digest":"${A}"}]}`, { kind: 'index', children: [A] }],
    ['index children under "MANIFESTS"', `{"schemaVersion":2,"mediaType":"${DL}","MANIFESTS":[{"DIGEST":"${A}"}]}`, { kind: 'index', children: [A] }],
    ['layers under "LAYERS", config under "Config"', `{"schemaVersion":2,"mediaType":"${DM}","Config":{"Digest":"${A}"},"LAYERS":[{"digest":"${B}"}]}`, { blobs: [A, B] }],
    ['long s (U+017F) folds to s: "layer\\u017f"', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layer\\u017f":[{"digest":"${B}"}]}`, { blobs: [A, B] }],
    ['long s written as raw UTF-8', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layer\u017f":[{"digest":"${B}"}]}`, { blobs: [A, B] }],
    ['Kelvin sign (U+212A) folds only to k, and no field read has a k: "layer\\u212a" matches nothing', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layer\\u212a":[{"digest":"${B}"}]}`, { blobs: [A] }],
    ['mediaType key in another case decides the kind', `{"schemaVersion":2,"MEDIATYPE":"${DL}","manifests":[{"digest":"${A}"}]}`, { kind: 'index', mediaType: DL, children: [A] }],
    ['"SchemaVersion" key', `{"SchemaVersion":2,"mediaType":"${DL}","manifests":[]}`, { kind: 'index', children: [] }],
    ['duplicate "manifests": the last wins', `{"schemaVersion":2,"mediaType":"${DL}","manifests":[{"digest":"${A}"},{"digest":"${B}"}],"manifests":[{"digest":"${C}"}]}`, { children: [C] }],
    ['"manifests" then "Manifests": the later key wins', `{"schemaVersion":2,"mediaType":"${DL}","manifests":[{"digest":"${A}"}],"Manifests":[{"digest":"${B}"}]}`, { children: [B] }],
    ['"Manifests" then "manifests": the later key wins', `{"schemaVersion":2,"mediaType":"${DL}","Manifests":[{"digest":"${B}"}],"manifests":[{"digest":"${A}"}]}`, { children: [A] }],
    ['a later list is decoded into the earlier elements: a digest it lacks survives', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layers":[{"digest":"${B}"}],"layers":[{"size":5}]}`, { blobs: [A, B] }],
    ['a later config object merges into the earlier one', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"config":{"size":3}}`, { blobs: [A] }],
    ['duplicate digest in one descriptor: the last wins', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}","Digest":"${B}"}}`, { blobs: [B] }],
    [
      'a shrunk then regrown list brings back what was past its length (Go slice capacity)',
      `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layers":[{"digest":"${B}"},{"digest":"${C}"}],"layers":[{}],"layers":[{},{}]}`,
      { blobs: [A, B, C] },
    ],
    ['null empties a list that came before', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layers":[{"digest":"${B}"}],"layers":null,"layers":[{}]}`, { blobs: [A] }],
    ['null config leaves it as it was', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"config":null}`, { blobs: [A] }],
    ['null digest marks nothing', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":null},"layers":[{"digest":"${B}"}]}`, { blobs: [B] }],
    ['docker manifest without config (garbage-collect marks an empty digest)', `{"schemaVersion":2,"mediaType":"${DM}","layers":[{"digest":"${B}"}]}`, { blobs: [B] }],
    ['no mediaType, "manifests": null is an image manifest', `{"schemaVersion":2,"manifests":null,"config":{"digest":"${A}"}}`, { kind: 'image', mediaType: MEDIA.ociManifest, blobs: [A] }],
    ['no mediaType, "manifests": [] is an (empty) index', `{"schemaVersion":2,"manifests":[],"config":{"digest":"${A}"}}`, { kind: 'index', children: [] }],
    ['no mediaType, no config, no manifests: an OCI image manifest', `{"schemaVersion":2,"layers":[{"digest":"${A}"}]}`, { kind: 'image', blobs: [A] }],
    ['schemaVersion 1 is schema1 whatever its mediaType says', `{"schemaVersion":1,"mediaType":"${MEDIA.ociIndex}","manifests":[{"digest":"${A}"}],"fsLayers":[{"blobSum":"${B}"}]}`, { kind: 'schema1', blobs: [B], children: [] }],
    ['schema1 fsLayers under "FSLAYERS" / "BlobSum"', `{"schemaVersion":1,"FSLAYERS":[{"BlobSum":"${C}"}]}`, { kind: 'schema1', blobs: [C] }],
    ['schema1 without fsLayers references nothing', `{"schemaVersion":1,"name":"app"}`, { kind: 'schema1', blobs: [] }],
    ['nested index: an index child of an index', `{"schemaVersion":2,"mediaType":"${MEDIA.ociIndex}","manifests":[{"mediaType":"${MEDIA.ociIndex}","digest":"${A}"}]}`, { kind: 'index', children: [A] }],
    ['unknown keys ignored, whatever their type', `{"schemaVersion":2,"mediaType":"${DL}","manifests":[],"extra":{"x":[1,true,null]},"blobs":"y"}`, { children: [] }],
    ['platform of a list entry (PlatformSpec) with features', `{"schemaVersion":2,"mediaType":"${DL}","manifests":[{"digest":"${A}","platform":{"os":"linux","features":["sse4"]}}]}`, { children: [A] }],
    ['foreign layer (urls) is referenced, and flagged foreign', `{"schemaVersion":2,"mediaType":"${DM}","config":{"digest":"${A}"},"layers":[{"digest":"${B}","urls":["https://x.example/b"]},{"digest":"${C}"}]}`, { blobs: [A, B, C], foreign: [B] }],
    ['invalid UTF-8 in an ignored value is accepted (Go replaces it)', `{"schemaVersion":2,"mediaType":"${DL}","note":"\xff","manifests":[{"digest":"${E}"}]}`, { children: [E] }],
    ['a key with a lone surrogate matches no field', `{"schemaVersion":2,"mediaType":"${DL}","manifests":[],"manifests\\ud800":[{"digest":"${A}"}]}`, { children: [] }],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const bytes = Buffer.from(text.replace('\xff', '\u0000'), 'utf8');
    // Put a real invalid byte where the case asks for one.
    const at = bytes.indexOf(0);
    if (at >= 0) bytes[at] = 0xff;
    expect(refsOf(bytes)).toMatchObject(expected);
    // The native fast path, where it is taken, reads exactly what the exact path reads.
    expect(parseManifest(bytes)).toEqual(parseManifest(bytes, true));
  });

  it('an invalid UTF-8 byte in mediaType makes it an unknown type (a problem), not the type it resembles', () => {
    const bytes = Buffer.from(`{"schemaVersion":2,"mediaType":"${DL}\u0000","manifests":[]}`, 'utf8');
    bytes[bytes.indexOf(0)] = 0xc3;
    const r = parseManifest(bytes);
    expect(r).toMatchObject({ ok: false });
    expect(r.ok ? '' : r.problem).toContain('unknown manifest media type');
  });

  it('the case-folded index JSON.parse misreads as childless', () => {
    const text = `{"schemaVersion":2,"mediaType":"${DL}","Manifests":[{"digest":"${A}"}]}`;
    expect((JSON.parse(text) as { manifests?: unknown }).manifests).toBeUndefined();
    expect(refsOf(text).children).toEqual([A]);
  });
});

describe('parseGoJson: Go syntax', () => {
  const bad: Array<[string, string]> = [
    ['trailing comma', '{"a":1,}'],
    ['single quotes', "{'a':1}"],
    ['leading zero', '{"a":01}'],
    ['raw control character in a string', '{"a":"\u0001"}'],
    ['bad escape', '{"a":"\\x"}'],
    ['two values', '{} {}'],
    ['byte order mark', '\ufeff{}'],
    ['NaN', '{"a":NaN}'],
  ];
  it.each(bad)('rejects %s', (_name, text) => {
    expect(() => parseGoJson(Buffer.from(text, 'utf8'))).toThrow();
  });
  it('keeps duplicate keys in order', () => {
    expect(parseGoJson(Buffer.from('{"a":1,"A":2,"a":3}'))).toEqual({
      t: 'object',
      members: [
        ['a', { t: 'number', raw: '1' }],
        ['A', { t: 'number', raw: '2' }],
        ['a', { t: 'number', raw: '3' }],
      ],
    });
  });
  it('turns each invalid UTF-8 byte and each lone surrogate into U+FFFD; keeps valid pairs', () => {
    const bytes = Buffer.concat([Buffer.from('"a'), Buffer.from([0xe2, 0x82]), Buffer.from('b\\ud800c\\ud83d\\ude00"')]);
    expect(parseGoJson(bytes)).toEqual({ t: 'string', v: 'a\ufffd\ufffdb\ufffdc\u{1f600}' });
  });
  it('refuses nesting deeper than Go allows (or than the stack allows: a problem, so kept)', () => {
    expect(() => parseGoJson(Buffer.from('['.repeat(10002) + ']'.repeat(10002)))).toThrow();
    expect(parseManifest(Buffer.from(`{"schemaVersion":2,"x":${'['.repeat(20000)}${']'.repeat(20000)},"manifests":[]}`))).toMatchObject({ ok: false });
  });
});

describe('parsePlainJson: JSON.parse only where it reads what Go reads', () => {
  const known = new Map([['layers', 'layers'], ['digest', 'digest'], ['schemaversion', 'schemaVersion']]);
  const cases: Array<[name: string, text: string, fast: boolean]> = [
    ['an ordinary manifest', `{"schemaVersion":2,"layers":[{"digest":"${A}","size":12}],"x":{"digest":"y"}}`, true],
    ['a known key in another case', '{"Layers":[]}', false],
    ['a known key twice in one object', '{"layers":[],"layers":[]}', false],
    ['the same known key in two objects', '{"layers":[{"digest":"a"},{"digest":"b"}]}', true],
    ['an unknown key twice (ignored by both)', '{"x":1,"x":2}', true],
    ['an escape anywhere', '{"x":"\\u0041"}', false],
    ['non-ASCII anywhere', '{"x":"\u00e9"}', false],
    ['a fraction', '{"schemaVersion":2.0}', false],
    ['an exponent', '{"schemaVersion":2e0}', false],
    ['16 digits', '{"size":1234567890123456}', false],
    ['true and false are not exponents', '{"a":true,"b":false,"c":null,"schemaVersion":2}', true],
    ['a colon inside a value string', '{"a":":","layers":[]}', true],
    ['invalid JSON', '{"a":}', false],
    ['deep nesting', '['.repeat(1001) + ']'.repeat(1001), false],
  ];
  it.each(cases)('%s', (_name, text, fast) => {
    expect(parsePlainJson(Buffer.from(text, 'utf8'), known) !== undefined).toBe(fast);
  });
});
