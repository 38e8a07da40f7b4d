import { createHash } from 'node:crypto';
import type { Digest } from '../../src/model/names.js';

/**
 * Pure builders for the content the harness pushes: manifests, configs and
 * layers made from seeds. The same seed always gives the same bytes, so a
 * layer can be shared between tags and repositories on purpose, and a
 * registry tree made from the same specs is the same byte for byte.
 * Layers are pseudo-random bytes, not tarballs: the registry never looks inside.
 */

export const MediaType = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  cosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
} as const;

/** Every manifest media type the harness pushes; what a pull puts in Accept. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.ociIndex,
];

export type ManifestFormat = 'docker' | 'oci';

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A blob (config or layer) with its exact bytes. */
export interface Blob {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly bytes: Buffer;
}

/** A manifest of any kind with the exact bytes pushed. */
export interface BuiltManifest {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly bytes: Buffer;
}

export interface BuiltImage {
  readonly manifest: BuiltManifest;
  readonly config: Blob;
  readonly layers: readonly Blob[];
}

export interface BuiltIndex {
  readonly manifest: BuiltManifest;
  readonly children: readonly BuiltImage[];
}

export interface LayerSpec {
  readonly seed: string;
  /** Bytes; default 2048. Same seed and size give the same blob. */
  readonly size?: number;
}

export interface ImageSpec {
  /** Default `docker` (schema 2). */
  readonly format?: ManifestFormat;
  /** Goes into the config, so it alone makes the manifest distinct. */
  readonly seed: string;
  /** Layer seeds (or seed + size). Default: one layer seeded `<seed>/layer`. */
  readonly layers?: ReadonlyArray<string | LayerSpec>;
  /** Default linux/amd64. */
  readonly platform?: Platform;
  /** OCI 1.1 referrer field; OCI format only. */
  readonly subject?: Descriptor;
  /** OCI manifest annotations; OCI format only. */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface IndexSpec {
  /** Default `docker` (manifest list); children use the same format. */
  readonly format?: ManifestFormat;
  /** One image per platform; each needs `platform`. */
  readonly children: readonly ImageSpec[];
}

export interface SignatureSpec {
  /** Makes the signature bytes distinct; default the signed digest. */
  readonly seed?: string;
  /** Add an OCI 1.1 `subject` pointing to the signed manifest (cosign's classic tag form has none). */
  readonly subject?: boolean;
  /** Repository reference written into the simple-signing payload; default `example.test/image`. */
  readonly dockerReference?: string;
}

export const DEFAULT_LAYER_SIZE = 2048;
const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };
// Reproducible builds stamp the epoch; the registry never reads it anyway.
const CREATED = '1970-01-01T00:00:00Z';

export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** `size` deterministic pseudo-random bytes: SHA-256 in counter mode over the seed. */
export function seededBytes(seed: string, size: number): Buffer {
  const chunks: Buffer[] = [];
  let have = 0;
  for (let i = 0; have < size; i++) {
    const chunk = createHash('sha256').update(`${seed}\0${i}`).digest();
    chunks.push(chunk);
    have += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, size);
}

export function blobFrom(mediaType: string, bytes: Buffer): Blob {
  return { mediaType, digest: sha256Digest(bytes), size: bytes.length, bytes };
}

export function manifestFrom(mediaType: string, document: unknown, indent?: number): BuiltManifest {
  const bytes = Buffer.from(JSON.stringify(document, null, indent), 'utf8');
  return { mediaType, digest: sha256Digest(bytes), size: bytes.length, bytes };
}

export function descriptorOf(item: Blob | BuiltManifest, extra: { platform?: Platform } = {}): Descriptor {
  return {
    mediaType: item.mediaType,
    digest: item.digest,
    size: item.size,
    ...(extra.platform === undefined ? {} : { platform: extra.platform }),
  };
}

/** Docker writes descriptors with mediaType first; OCI tools do the same. Keep key order stable. */
function descriptorJson(d: Descriptor): Record<string, unknown> {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform !== undefined) {
    const p: Record<string, string> = { architecture: d.platform.architecture, os: d.platform.os };
    if (d.platform.variant !== undefined) p['variant'] = d.platform.variant;
    out['platform'] = p;
  }
  if (d.annotations !== undefined) out['annotations'] = { ...d.annotations };
  return out;
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const format = spec.format ?? 'docker';
  if (format === 'docker' && (spec.subject !== undefined || spec.annotations !== undefined)) {
    throw new Error(`buildImage ${spec.seed}: subject and annotations need format 'oci'`);
  }
  const layerMedia = format === 'docker' ? MediaType.dockerLayer : MediaType.ociLayer;
  const layerSpecs = spec.layers ?? [`${spec.seed}/layer`];
  const layers = layerSpecs.map((l) => {
    const { seed, size } = typeof l === 'string' ? { seed: l, size: undefined } : l;
    return blobFrom(layerMedia, seededBytes(seed, size ?? DEFAULT_LAYER_SIZE));
  });
  const platform = spec.platform ?? DEFAULT_PLATFORM;
  const configDoc: Record<string, unknown> = {
    architecture: platform.architecture,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    config: { Labels: { 'test.regprune.seed': spec.seed } },
    created: CREATED,
    os: platform.os,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  };
  const config = blobFrom(
    format === 'docker' ? MediaType.dockerConfig : MediaType.ociConfig,
    Buffer.from(JSON.stringify(configDoc), 'utf8'),
  );
  return { manifest: imageManifest(format, config, layers, spec), config, layers };
}

function imageManifest(format: ManifestFormat, config: Blob, layers: readonly Blob[], spec: ImageSpec): BuiltManifest {
  const mediaType = format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest;
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptorJson(descriptorOf(config)),
    layers: layers.map((l) => descriptorJson(descriptorOf(l))),
  };
  if (spec.subject !== undefined) doc['subject'] = descriptorJson(spec.subject);
  if (spec.annotations !== undefined) doc['annotations'] = { ...spec.annotations };
  // docker indents with three spaces; OCI tools (oras, cosign) write compact JSON.
  return manifestFrom(mediaType, doc, format === 'docker' ? 3 : undefined);
}

export function buildIndex(spec: IndexSpec): BuiltIndex {
  const format = spec.format ?? 'docker';
  const children = spec.children.map((child, i) => {
    if (child.platform === undefined) throw new Error(`buildIndex: child ${i} (${child.seed}) has no platform`);
    if ((child.format ?? format) !== format) throw new Error(`buildIndex: child ${i} (${child.seed}) is not ${format}`);
    return buildImage({ ...child, format });
  });
  const mediaType = format === 'docker' ? MediaType.dockerManifestList : MediaType.ociIndex;
  const doc = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c, i) => descriptorJson(descriptorOf(c.manifest, { platform: spec.children[i]?.platform ?? DEFAULT_PLATFORM }))),
  };
  return { manifest: manifestFrom(mediaType, doc, format === 'docker' ? 3 : undefined), children };
}

/** cosign's tag for the signature of `digest`: `sha256-<hex>.sig`. */
export function signatureTag(digest: Digest): string {
  return `${digest.replace(':', '-')}.sig`;
}

/**
 * A cosign-style signature of `signed`: an OCI manifest whose one layer is a
 * simple-signing payload naming the signed digest, with the (fake,
 * deterministic) signature in the layer's annotation, as cosign writes it.
 */
export function buildSignature(signed: BuiltManifest | Descriptor, spec: SignatureSpec = {}): BuiltImage {
  const seed = spec.seed ?? signed.digest;
  const payload = {
    critical: {
      identity: { 'docker-reference': spec.dockerReference ?? 'example.test/image' },
      image: { 'docker-manifest-digest': signed.digest },
      type: 'cosign container image signature',
    },
    optional: null,
  };
  const layer = blobFrom(MediaType.cosignSimpleSigning, Buffer.from(JSON.stringify(payload), 'utf8'));
  const signature = seededBytes(`${seed}/signature`, 64).toString('base64');
  const configDoc = {
    architecture: '',
    config: {},
    created: CREATED,
    history: [{ created: CREATED }],
    os: '',
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  };
  const config = blobFrom(MediaType.ociConfig, Buffer.from(JSON.stringify(configDoc), 'utf8'));
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorJson(descriptorOf(config)),
    layers: [
      descriptorJson({ ...descriptorOf(layer), annotations: { 'dev.cosignproject.cosign/signature': signature } }),
    ],
  };
  if (spec.subject === true) doc['subject'] = descriptorJson({ mediaType: signed.mediaType, digest: signed.digest, size: signed.size });
  return { manifest: manifestFrom(MediaType.ociManifest, doc), config, layers: [layer] };
}
