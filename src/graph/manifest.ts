import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { GoJsonError, decodeGo, decodePlain, elements, parseGoJson, parsePlainJson, type GoStruct, type GoType } from './gojson.js';

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
  /** Blobs among `blobs` named by descriptors with `urls` (foreign / non-distributable layers): need not be in the registry. */
  readonly foreign?: readonly Digest[];
}

export type ParsedManifest =
  | { readonly ok: true; readonly refs: ManifestRefs }
  /** `refused`: the registry itself cannot read it (it fails pulls and garbage-collect aborts); else only regprune is unsure. */
  | { readonly ok: false; readonly problem: string; readonly refused?: true };

const S: GoType = { k: 'string' };
const STRINGS: GoType = { k: 'slice', of: S };
const ANNOTATIONS: GoType = { k: 'map' };
const VERSIONED = { schemaVersion: { k: 'int' }, mediaType: S } as const satisfies Record<string, GoType>;
/** image-spec v1.0 Platform, as distribution.Descriptor holds it. */
const PLATFORM: GoType = { k: 'struct', fields: { architecture: S, os: S, 'os.version': S, 'os.features': STRINGS, variant: S } };
const DESCRIPTOR_FIELDS = { mediaType: S, size: { k: 'int' }, digest: S, urls: STRINGS, annotations: ANNOTATIONS } as const satisfies Record<string, GoType>;
/** distribution.Descriptor (2.8). */
const DESCRIPTOR: GoType = { k: 'struct', fields: { ...DESCRIPTOR_FIELDS, platform: { k: 'ptr', to: PLATFORM } } };
/** A manifest list entry: the embedded Descriptor's platform is shadowed by the list's own PlatformSpec. */
const LIST_ENTRY: GoType = {
  k: 'struct',
  fields: { ...DESCRIPTOR_FIELDS, platform: { k: 'struct', fields: { architecture: S, os: S, 'os.version': S, 'os.features': STRINGS, variant: S, features: STRINGS } } },
};
/**
 * `subject` is not a field of any 2.8 struct (ignored there); v3 reads it as
 * a descriptor pointer. regprune only uses it to keep more (referrers of kept
 * manifests), so it is read as v3 would.
 */
const SUBJECT: GoType = { k: 'ptr', to: DESCRIPTOR };
const VERSIONED_T: GoType = { k: 'struct', fields: VERSIONED };
const IMAGE: GoType = { k: 'struct', fields: { ...VERSIONED, config: DESCRIPTOR, layers: { k: 'slice', of: DESCRIPTOR }, annotations: ANNOTATIONS, subject: SUBJECT } };
const LIST: GoType = { k: 'struct', fields: { ...VERSIONED, manifests: { k: 'slice', of: LIST_ENTRY }, subject: SUBJECT } };
const FSLAYER: GoType = { k: 'struct', fields: { blobSum: S } };
const SCHEMA1: GoType = {
  k: 'struct',
  fields: {
    ...VERSIONED,
    name: S,
    tag: S,
    architecture: S,
    fsLayers: { k: 'slice', of: FSLAYER },
    history: { k: 'slice', of: { k: 'struct', fields: { v1Compatibility: S } } },
  },
};

class Unsure extends Error {}

/**
 * The digest a descriptor names, as garbage-collect would mark it. An empty
 * digest marks nothing (garbage-collect marks the empty string); anything
 * else that is not a lowercase sha256 digest is not something regprune can
 * match against the blob store for sure, so it is a problem (kept).
 */
function digestOf(desc: GoStruct, field: string, where: string): Digest | undefined {
  const d = desc[field] as string;
  if (d === '') return undefined;
  if (!isDigest(d)) throw new Unsure(`${where} has digest ${JSON.stringify(d)}, not a sha256 digest`);
  return d;
}

function descriptors(list: unknown, of: GoType, where: string): Array<{ digest: Digest; foreign: boolean }> {
  const out: Array<{ digest: Digest; foreign: boolean }> = [];
  elements(list, of).forEach((e, i) => {
    const desc = e as GoStruct;
    const digest = digestOf(desc, 'digest', `${where}[${i}]`);
    if (digest !== undefined) out.push({ digest, foreign: elements(desc.urls, S).length > 0 });
  });
  return out;
}

function subjectOf(doc: GoStruct): Digest | undefined {
  return doc.subject === null ? undefined : digestOf(doc.subject as GoStruct, 'digest', 'subject');
}

/** A manifest read once, decoded into the registry's struct types as needed. */
interface Doc {
  decode(t: GoType): GoStruct;
  /** Has a top-level `signatures` key (schema1 as pushed). */
  readonly signed: boolean;
}

/** Every field name read, lowercase -> spelling: the keys that decide whether JSON.parse reads what Go reads. */
const KNOWN = new Map<string, string>();
for (const t of [IMAGE, LIST, SCHEMA1, LIST_ENTRY, DESCRIPTOR, PLATFORM]) {
  const visit = (x: GoType): void => {
    if (x.k === 'struct') for (const [name, f] of Object.entries(x.fields)) { KNOWN.set(name.toLowerCase(), name); visit(f); }
    else if (x.k === 'ptr') visit(x.to);
    else if (x.k === 'slice') visit(x.of);
  };
  visit(t);
}

/** Parses with Go's syntax rules; the native parser where it provably agrees (see parsePlainJson). */
export function readDoc(bytes: Uint8Array, exactOnly = false): Doc {
  const fast = exactOnly ? undefined : parsePlainJson(bytes, KNOWN);
  if (fast !== undefined) {
    const v = fast.value;
    return { decode: (t) => decodePlain(v, t) as GoStruct, signed: typeof v === 'object' && v !== null && !Array.isArray(v) && Object.hasOwn(v, 'signatures') };
  }
  const root = parseGoJson(bytes);
  return { decode: (t) => decodeGo(root, t) as GoStruct, signed: root.t === 'object' && root.members.some(([k]) => k === 'signatures') };
}

function image(mediaType: string, root: Doc): ManifestRefs {
  const doc = root.decode(IMAGE);
  const config = digestOf(doc.config as GoStruct, 'digest', 'config');
  const layers = descriptors(doc.layers, DESCRIPTOR, 'layers');
  const foreign = layers.filter((l) => l.foreign).map((l) => l.digest);
  return {
    kind: 'image',
    mediaType,
    blobs: [...(config === undefined ? [] : [config]), ...layers.map((l) => l.digest)],
    children: [],
    subject: subjectOf(doc),
    ...(foreign.length > 0 ? { foreign } : {}),
  };
}

function index(mediaType: string, doc: GoStruct): ManifestRefs {
  return { kind: 'index', mediaType, blobs: [], children: descriptors(doc.manifests, LIST_ENTRY, 'manifests').map((c) => c.digest), subject: subjectOf(doc) };
}

/**
 * 2.8 stores schema1 as the payload without signatures and signs it again on
 * every read; what garbage-collect marks is the fsLayers of the stored bytes.
 */
function schema1(root: Doc): ManifestRefs {
  const doc = root.decode(SCHEMA1);
  const blobs = elements(doc.fsLayers, FSLAYER).flatMap((l, i) => digestOf(l as GoStruct, 'blobSum', `fsLayers[${i}].blobSum`) ?? []);
  const signed = doc.mediaType === MEDIA.schema1Signed || root.signed;
  return { kind: 'schema1', mediaType: signed ? MEDIA.schema1Signed : MEDIA.schema1, blobs, children: [], subject: undefined };
}

/**
 * Reads what a manifest references, deciding its kind as the registry's
 * manifest store does (2.8): `schemaVersion` 1 is schema1 whatever the media
 * type; 2 goes by `mediaType`, and without one it is an index when
 * `manifests` decodes to a list (even empty), else an OCI image manifest.
 * Anything the registry would refuse (so garbage-collect aborts on it) or
 * regprune cannot be sure about is a problem, not a guess: the caller keeps
 * such a manifest and everything it might reference.
 */
export function parseManifest(content: Uint8Array | string, exactOnly = false): ParsedManifest {
  let root: Doc;
  try {
    root = readDoc(typeof content === 'string' ? Buffer.from(content, 'utf8') : content, exactOnly);
  } catch {
    return { ok: false, problem: 'manifest is not JSON', refused: true };
  }
  let mediaType = 'manifest';
  try {
    const versioned = root.decode(VERSIONED_T);
    mediaType = versioned.mediaType as string;
    const schemaVersion = versioned.schemaVersion as bigint;
    if (schemaVersion === 1n) return { ok: true, refs: schema1(root) };
    if (schemaVersion !== 2n) return { ok: false, problem: `unrecognized manifest schema version ${schemaVersion}`, refused: true };
    switch (mediaType) {
      case MEDIA.dockerManifest:
      case MEDIA.ociManifest:
        return { ok: true, refs: image(mediaType, root) };
      case MEDIA.dockerList:
      case MEDIA.ociIndex:
        return { ok: true, refs: index(mediaType, root.decode(LIST)) };
      case '': {
        // An index if `manifests` is there and not null; the registry itself crashes when it does not decode.
        const list = root.decode(LIST);
        if (list.manifests !== null) return { ok: true, refs: index(MEDIA.ociIndex, list) };
        return { ok: true, refs: image(MEDIA.ociManifest, root) };
      }
      default:
        return { ok: false, problem: `unknown manifest media type ${JSON.stringify(mediaType)}`, refused: true };
    }
  } catch (err) {
    if (err instanceof GoJsonError) return { ok: false, problem: `${mediaType || 'manifest'}: ${err.message}`, refused: true };
    if (err instanceof Unsure) return { ok: false, problem: `${mediaType || 'manifest'}: ${err.message}` };
    throw err;
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
