import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model/names.js';
import { MEDIA, parseManifest, signatureSubject, type ParsedManifest } from '../../src/graph/manifest.js';
import { buildImage, buildIndex, buildSignature, descriptorOf, signatureTag } from '../helpers/images.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const A = d('a');
const B = d('b');
const C = d('c');
const S = d('5');

const desc = (digest: string, mediaType = 'application/octet-stream') => ({ mediaType, digest, size: 10 });
const bytes = (doc: unknown) => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc), 'utf8');
const parse = (doc: unknown): ParsedManifest => parseManifest(bytes(doc));

describe('parseManifest: what each kind references', () => {
  const cases: Array<[name: string, doc: unknown, expected: ParsedManifest]> = [
    [
      'docker v2 manifest',
      { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: desc(A), layers: [desc(B), desc(C)] },
      { ok: true, refs: { kind: 'image', mediaType: MEDIA.dockerManifest, blobs: [A, B, C], children: [], subject: undefined } },
    ],
    [
      'OCI image manifest with mediaType',
      { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), layers: [desc(B)] },
      { ok: true, refs: { kind: 'image', mediaType: MEDIA.ociManifest, blobs: [A, B], children: [], subject: undefined } },
    ],
    [
      'OCI image manifest without mediaType',
      { schemaVersion: 2, config: desc(A), layers: [desc(B)] },
      { ok: true, refs: { kind: 'image', mediaType: MEDIA.ociManifest, blobs: [A, B], children: [], subject: undefined } },
    ],
    [
      'OCI image manifest without layers (an artifact with only a config)',
      { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A) },
      { ok: true, refs: { kind: 'image', mediaType: MEDIA.ociManifest, blobs: [A], children: [], subject: undefined } },
    ],
    [
      'OCI image manifest with subject (OCI 1.1 referrer)',
      { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), layers: [desc(B)], subject: desc(S, MEDIA.ociManifest) },
      { ok: true, refs: { kind: 'image', mediaType: MEDIA.ociManifest, blobs: [A, B], children: [], subject: S } },
    ],
    [
      'docker manifest list',
      { schemaVersion: 2, mediaType: MEDIA.dockerList, manifests: [desc(A, MEDIA.dockerManifest), desc(B, MEDIA.dockerManifest)] },
      { ok: true, refs: { kind: 'index', mediaType: MEDIA.dockerList, blobs: [], children: [A, B], subject: undefined } },
    ],
    [
      'OCI index with mediaType',
      { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [desc(A, MEDIA.ociManifest)] },
      { ok: true, refs: { kind: 'index', mediaType: MEDIA.ociIndex, blobs: [], children: [A], subject: undefined } },
    ],
    [
      'OCI index without mediaType',
      { schemaVersion: 2, manifests: [desc(A), desc(B)] },
      { ok: true, refs: { kind: 'index', mediaType: MEDIA.ociIndex, blobs: [], children: [A, B], subject: undefined } },
    ],
    [
      'OCI index with subject',
      { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [desc(A)], subject: desc(S) },
      { ok: true, refs: { kind: 'index', mediaType: MEDIA.ociIndex, blobs: [], children: [A], subject: S } },
    ],
    [
      'empty OCI index',
      { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] },
      { ok: true, refs: { kind: 'index', mediaType: MEDIA.ociIndex, blobs: [], children: [], subject: undefined } },
    ],
    [
      'schema1 unsigned',
      { schemaVersion: 1, name: 'app', tag: 'v1', architecture: 'amd64', fsLayers: [{ blobSum: A }, { blobSum: B }], history: [] },
      { ok: true, refs: { kind: 'schema1', mediaType: MEDIA.schema1, blobs: [A, B], children: [], subject: undefined } },
    ],
    [
      'schema1 signed (as pushed: no mediaType field, a signatures list)',
      {
        schemaVersion: 1,
        name: 'app',
        tag: 'v1',
        architecture: 'amd64',
        fsLayers: [{ blobSum: A }, { blobSum: A }, { blobSum: B }],
        history: [{ v1Compatibility: '{}' }],
        signatures: [{ header: { alg: 'ES256' }, signature: 'x', protected: 'y' }],
      },
      { ok: true, refs: { kind: 'schema1', mediaType: MEDIA.schema1Signed, blobs: [A, A, B], children: [], subject: undefined } },
    ],
    [
      'schema1 with an explicit prettyjws mediaType',
      { schemaVersion: 1, mediaType: MEDIA.schema1Signed, fsLayers: [{ blobSum: C }] },
      { ok: true, refs: { kind: 'schema1', mediaType: MEDIA.schema1Signed, blobs: [C], children: [], subject: undefined } },
    ],
  ];
  it.each(cases)('%s', (_name, doc, expected) => {
    expect(parse(doc)).toEqual(expected);
    expect(parseManifest(bytes(doc), true)).toEqual(expected);
  });

  it('manifests made by the test builders (exact pushed bytes, docker indentation)', () => {
    const image = buildImage({ seed: 'x', layers: ['l1', 'l2'] });
    expect(parseManifest(image.manifest.bytes)).toEqual({
      ok: true,
      refs: {
        kind: 'image',
        mediaType: MEDIA.dockerManifest,
        blobs: [image.config.digest, ...image.layers.map((l) => l.digest)],
        children: [],
        subject: undefined,
      },
    });
    const index = buildIndex({
      format: 'oci',
      children: [
        { seed: 'amd', platform: { os: 'linux', architecture: 'amd64' } },
        { seed: 'arm', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    expect(parseManifest(index.manifest.bytes)).toEqual({
      ok: true,
      refs: { kind: 'index', mediaType: MEDIA.ociIndex, blobs: [], children: index.children.map((c) => c.manifest.digest), subject: undefined },
    });
    const sig = buildSignature(image.manifest, { subject: true });
    expect(parseManifest(sig.manifest.bytes)).toMatchObject({ ok: true, refs: { kind: 'image', subject: image.manifest.digest } });
    const referrer = buildImage({ seed: 'sbom', format: 'oci', subject: descriptorOf(image.manifest) });
    expect(parseManifest(referrer.manifest.bytes)).toMatchObject({ ok: true, refs: { subject: image.manifest.digest } });
  });
});

describe('parseManifest: anything the registry refuses, or regprune cannot be sure of, is a problem', () => {
  const cases: Array<[name: string, doc: unknown, problem: string]> = [
    ['not JSON', 'not json {', 'manifest is not JSON'],
    ['empty', '', 'manifest is not JSON'],
    ['trailing data after the object', '{"schemaVersion":2,"manifests":[]} x', 'manifest is not JSON'],
    ['a JSON array', [1, 2], 'cannot unmarshal array'],
    ['JSON null (schema version 0)', 'null', 'unrecognized manifest schema version 0'],
    [
      'unknown media type',
      { schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json', blobs: [desc(A)] },
      'unknown manifest media type "application/vnd.oci.artifact.manifest.v1+json"',
    ],
    ['no schemaVersion', { mediaType: MEDIA.dockerManifest, config: desc(A), layers: [] }, 'unrecognized manifest schema version 0'],
    ['no mediaType, schemaVersion 3', { schemaVersion: 3, config: desc(A) }, 'unrecognized manifest schema version 3'],
    ['schemaVersion 2.0 (not an int for Go)', '{"schemaVersion":2.0,"manifests":[]}', 'cannot unmarshal number'],
    ['schemaVersion as a string', { schemaVersion: '2', manifests: [] }, 'cannot unmarshal string'],
    ['config digest too short', { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: desc('sha256:abc'), layers: [] }, 'config has digest "sha256:abc", not a sha256 digest'],
    [
      'layer digest in uppercase',
      { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), layers: [desc(B), desc(`sha256:${'B'.repeat(64)}`)] },
      `layers[1] has digest "sha256:${'B'.repeat(64)}", not a sha256 digest`,
    ],
    ['layer with a sha512 digest', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), layers: [desc(`sha512:${'a'.repeat(128)}`)] }, 'layers[0] has digest "sha512:'],
    ['layers not a list', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), layers: { a: 1 } }, 'cannot unmarshal object into .layers'],
    ['layers a string', { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: desc(A), layers: 'x' }, 'cannot unmarshal string into .layers'],
    ['layer size as a string', { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: desc(A), layers: [{ digest: B, size: '1' }] }, 'cannot unmarshal string into .layers[0].size'],
    ['layer size 1.5', `{"schemaVersion":2,"mediaType":"${MEDIA.dockerManifest}","config":{"digest":"${A}"},"layers":[{"digest":"${B}","size":1.5}]}`, 'cannot unmarshal number'],
    ['annotation value not a string', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), annotations: { a: 1 } }, 'cannot unmarshal number'],
    ['index child with a bad digest', { schemaVersion: 2, mediaType: MEDIA.dockerList, manifests: [desc(A), desc('sha256:zz')] }, 'manifests[1] has digest "sha256:zz", not a sha256 digest'],
    ['index manifests not a list', { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: 'x' }, 'cannot unmarshal string into .manifests'],
    ['no mediaType and manifests not a list (the registry crashes on it)', { schemaVersion: 2, manifests: {} }, 'cannot unmarshal object into .manifests'],
    ['subject not a descriptor', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: desc(A), subject: 'x' }, 'cannot unmarshal string into .subject'],
    ['subject with a bad digest', { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [], subject: desc('md5:x') }, 'subject has digest "md5:x", not a sha256 digest'],
    ['schema1 with a bad blobSum', { schemaVersion: 1, fsLayers: [{ blobSum: A }, { blobSum: 'sha256:1' }] }, 'fsLayers[1].blobSum has digest "sha256:1"'],
    ['schema1 history not a list', { schemaVersion: 1, fsLayers: [{ blobSum: A }], history: 'x' }, 'cannot unmarshal string into .history'],
  ];
  it.each(cases)('%s', (_name, doc, problem) => {
    const r = parse(doc);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.problem).toContain(problem);
    expect(parseManifest(bytes(doc), true)).toEqual(r);
  });
});

describe('signatureSubject', () => {
  const hex = '0123456789abcdef'.repeat(4);
  const cases: Array<[name: string, tag: string, subject: string | undefined]> = [
    ['cosign signature', `sha256-${hex}.sig`, `sha256:${hex}`],
    ['cosign attestation', `sha256-${hex}.att`, `sha256:${hex}`],
    ['cosign SBOM', `sha256-${hex}.sbom`, `sha256:${hex}`],
    ['OCI 1.1 referrers fallback tag', `sha256-${hex}`, `sha256:${hex}`],
    ['unknown suffix', `sha256-${hex}.foo`, undefined],
    ['suffix plus more', `sha256-${hex}.sig.bak`, undefined],
    ['uppercase hex', `sha256-${hex.toUpperCase()}.sig`, undefined],
    ['63 hex', `sha256-${hex.slice(1)}.sig`, undefined],
    ['65 hex', `sha256-${hex}0.sig`, undefined],
    ['sha512', `sha512-${hex}${hex}.sig`, undefined],
    ['prefix before', `v1-sha256-${hex}.sig`, undefined],
    ['ordinary tag', 'v1.sig', undefined],
    ['empty', '', undefined],
  ];
  it.each(cases)('%s', (_name, tag, subject) => {
    expect(signatureSubject(tag)).toBe(subject);
  });

  it('round-trips the helper used to push signatures', () => {
    const image = buildImage({ seed: 'signed' });
    expect(signatureSubject(signatureTag(image.manifest.digest))).toBe(image.manifest.digest);
  });
});
