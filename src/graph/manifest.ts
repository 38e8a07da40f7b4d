import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  schema1: 'application/vnd.docker.distribution.manifest.v1+json',
  schema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type ManifestKind = 'image' | 'index' | 'schema1';

/** What a manifest references, in the terms garbage-collect marks by. */
export interface ManifestRefs {
  readonly kind: ManifestKind;
  readonly mediaType: string;
  /** Config and layer blobs (schema1: fsLayers blobSums). */
  readonly blobs: readonly Digest[];
  /** Child manifests of an index / manifest list. */
  readonly children: readonly Digest[];
  /** OCI 1.1 `subject`: the manifest this one is about (signature, SBOM, ...). */
  readonly subject: Digest | undefined;
}

export type ParsedManifest = { readonly ok: true; readonly refs: ManifestRefs } | { readonly ok: false; readonly problem: string };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function descriptorDigest(d: unknown, where: string): Digest {
  if (!isObject(d) || typeof d.digest !== 'string') throw new Error(`${where} is not a descriptor with a digest`);
  if (!isDigest(d.digest)) throw new Error(`${where} has digest ${JSON.stringify(d.digest)}, not a sha256 digest`);
  return d.digest;
}

function descriptorList(list: unknown, where: string): Digest[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new Error(`${where} is not a list`);
  return list.map((d, i) => descriptorDigest(d, `${where}[${i}]`));
}

function optionalSubject(doc: Json): Digest | undefined {
  return doc.subject === undefined ? undefined : descriptorDigest(doc.subject, 'subject');
}

function image(mediaType: string, doc: Json): ManifestRefs {
  return {
    kind: 'image',
    mediaType,
    blobs: [descriptorDigest(doc.config, 'config'), ...descriptorList(doc.layers, 'layers')],
    children: [],
    subject: optionalSubject(doc),
  };
}

function index(mediaType: string, doc: Json): ManifestRefs {
  return { kind: 'index', mediaType, blobs: [], children: descriptorList(doc.manifests, 'manifests'), subject: optionalSubject(doc) };
}

function schema1(mediaType: string, doc: Json): ManifestRefs {
  if (!Array.isArray(doc.fsLayers)) throw new Error('schema1 manifest without fsLayers');
  const blobs = doc.fsLayers.map((l, i) => {
    if (!isObject(l) || typeof l.blobSum !== 'string' || !isDigest(l.blobSum)) throw new Error(`fsLayers[${i}].blobSum is not a sha256 digest`);
    return l.blobSum;
  });
  return { kind: 'schema1', mediaType, blobs, children: [], subject: undefined };
}

/**
 * Reads what a manifest references. Anything not understood is a problem,
 * not a guess: the caller keeps such a manifest and all it might reference.
 */
export function parseManifest(content: Uint8Array | string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof content === 'string' ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8'));
  } catch {
    return { ok: false, problem: 'manifest is not JSON' };
  }
  if (!isObject(doc)) return { ok: false, problem: 'manifest is not a JSON object' };
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  try {
    switch (mediaType) {
      case MEDIA.dockerManifest:
      case MEDIA.ociManifest:
        return { ok: true, refs: image(mediaType, doc) };
      case MEDIA.dockerList:
      case MEDIA.ociIndex:
        return { ok: true, refs: index(mediaType, doc) };
      case MEDIA.schema1:
      case MEDIA.schema1Signed:
        return { ok: true, refs: schema1(mediaType, doc) };
      case undefined:
        // schema1 and OCI documents may omit mediaType.
        // Signed schema1 (what 2.8 stores) carries no mediaType either; its JWS signatures tell it apart.
        if (doc.schemaVersion === 1) return { ok: true, refs: schema1(Array.isArray(doc.signatures) ? MEDIA.schema1Signed : MEDIA.schema1, doc) };
        if (doc.schemaVersion === 2 && Array.isArray(doc.manifests)) return { ok: true, refs: index(MEDIA.ociIndex, doc) };
        if (doc.schemaVersion === 2 && isObject(doc.config)) return { ok: true, refs: image(MEDIA.ociManifest, doc) };
        return { ok: false, problem: 'manifest has no mediaType and is neither an OCI image manifest nor an index' };
      default:
        return { ok: false, problem: `unknown manifest media type ${JSON.stringify(mediaType)}` };
    }
  } catch (err) {
    return { ok: false, problem: `${mediaType ?? 'manifest'}: ${(err as Error).message}` };
  }
}

const SIGNATURE_TAG = /^sha256-([a-f0-9]{64})(?:\.(sig|att|sbom))?$/;

/**
 * The manifest a cosign-style tag (`sha256-<hex>.sig|.att|.sbom`) or an OCI
 * referrers fallback tag (`sha256-<hex>`) is about, or undefined.
 */
export function signatureSubject(tag: string): Digest | undefined {
  const m = SIGNATURE_TAG.exec(tag);
  return m === null ? undefined : (`sha256:${m[1]}` as Digest);
}
