/**
 * What the synthetic registry holds: a seeded PRNG and the JSON documents a
 * real push writes (image configs, docker v2 / OCI manifests, manifest lists,
 * OCI indexes, cosign signature manifests). Pure: no filesystem here; the
 * tree writer in generate.ts decides where the bytes go.
 */
import { createHash } from 'node:crypto';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  cosignPayload: 'application/vnd.dev.cosign.simplesigning.v1+json',
} as const;

/** mulberry32: tiny, fast, good enough for shaping test data; not for secrets. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  hex(chars: number): string {
    let out = '';
    while (out.length < chars) out += ((this.next() * 4294967296) >>> 0).toString(16).padStart(8, '0');
    return out.slice(0, chars);
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() * 256) >>> 0;
    return out;
  }
}

/** A stable 32-bit seed for a sub-stream (e.g. one repository), so work can be split across threads. */
export function subSeed(seed: number, ...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of [seed, ...parts]) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
  }
  return h >>> 0;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Content bytes with their digest computed once. */
export interface Content {
  readonly hex: string;
  readonly bytes: Buffer;
}

export function content(bytes: Buffer): Content {
  return { hex: sha256Hex(bytes), bytes };
}

export function jsonContent(doc: unknown, indent?: number): Content {
  return content(Buffer.from(JSON.stringify(doc, null, indent), 'utf8'));
}

export interface Descriptor {
  mediaType: string;
  size: number;
  digest: string;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

export function descriptor(mediaType: string, c: Content): Descriptor {
  return { mediaType, size: c.bytes.length, digest: `sha256:${c.hex}` };
}

/** A layer blob plus the digest its config lists in rootfs.diff_ids. */
export interface Layer {
  readonly blob: Content;
  readonly diffId: string;
}

/**
 * Layer bytes: a unique random header then a slice of shared noise, so a
 * layer costs one hash and no per-byte PRNG calls. Sizes stay small (a few
 * hundred bytes to a few KB): the benchmark is about entries, not bytes.
 */
export function makeLayer(rng: Rng, noise: Buffer, id: string, minSize: number, maxSize: number): Layer {
  const size = rng.int(minSize, maxSize);
  const header = Buffer.concat([Buffer.from(`${id}\n`, 'utf8'), rng.bytes(16)]);
  const bodyLength = Math.max(0, size - header.length);
  const offset = rng.int(0, noise.length - bodyLength);
  const blob = content(Buffer.concat([header, noise.subarray(offset, offset + bodyLength)]));
  return { blob, diffId: `sha256:${sha256Hex(Buffer.from(`diff:${blob.hex}`, 'utf8'))}` };
}

export function makeNoise(seed: number, length = 64 * 1024): Buffer {
  return new Rng(subSeed(seed, 0x6e6f6973)).bytes(length);
}

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

export const PLATFORMS: readonly Platform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
];

/** Base images built from a global pool of layers, shared by every repository using that base. */
export interface BaseImage {
  readonly name: string;
  readonly layers: readonly Layer[];
}

const BASE_NAMES = ['debian-12', 'debian-12-slim', 'alpine-3.20', 'alpine-3.21', 'ubuntu-24.04', 'distroless-static', 'distroless-cc', 'node-20', 'node-22', 'python-3.12', 'golang-1.23', 'temurin-21'];

/** Per platform, the base images; layers are shared between bases (as an OS layer is under node and python). */
export function makeBasePool(seed: number, noise: Buffer): Map<string, BaseImage[]> {
  const pool = new Map<string, BaseImage[]>();
  for (const [p, platform] of PLATFORMS.entries()) {
    const rng = new Rng(subSeed(seed, 0x62617365, p));
    const layers = Array.from({ length: 24 }, (_, i) => makeLayer(rng, noise, `base/${platform.architecture}/${i}`, 1024, 8192));
    const bases = BASE_NAMES.map((name, b) => {
      const count = rng.int(2, 4);
      const chosen: Layer[] = [];
      // The first layer plays the OS: bases of one family share it.
      chosen.push(layers[b % 6] as Layer);
      while (chosen.length < count) {
        const layer = rng.pick(layers);
        if (!chosen.includes(layer)) chosen.push(layer);
      }
      return { name, layers: chosen };
    });
    pool.set(platform.architecture, bases);
  }
  return pool;
}

export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export interface ConfigInput {
  readonly repository: string;
  readonly version: string;
  readonly platform: Platform;
  readonly layers: readonly Layer[];
  readonly createdMs: number;
  readonly revision: string;
}

export function imageConfig(input: ConfigInput): Content {
  const created = isoSeconds(input.createdMs);
  const doc: Record<string, unknown> = {
    architecture: input.platform.architecture,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Entrypoint: ['/app/server'],
      WorkingDir: '/app',
      Labels: {
        'org.opencontainers.image.revision': input.revision,
        'org.opencontainers.image.source': `https://git.example.com/${input.repository}`,
        'org.opencontainers.image.version': input.version,
      },
    },
    created,
    history: input.layers.map((_, i) => ({ created, created_by: `RUN step ${i} # buildkit` })),
    os: input.platform.os,
    rootfs: { type: 'layers', diff_ids: input.layers.map((l) => l.diffId) },
  };
  if (input.platform.variant !== undefined) doc['variant'] = input.platform.variant;
  return jsonContent(doc);
}

/** A single-platform image manifest, docker v2 (3-space indented, as docker pushes it) or OCI (compact). */
export function imageManifest(oci: boolean, config: Content, layers: readonly Layer[]): Content {
  if (oci) {
    return jsonContent({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: descriptor(MEDIA.ociConfig, config),
      layers: layers.map((l) => descriptor(MEDIA.ociLayer, l.blob)),
    });
  }
  return jsonContent(
    {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: descriptor(MEDIA.dockerConfig, config),
      layers: layers.map((l) => descriptor(MEDIA.dockerLayer, l.blob)),
    },
    3,
  );
}

export function imageIndex(oci: boolean, children: ReadonlyArray<{ manifest: Content; platform: Platform }>): Content {
  const manifests = children.map(({ manifest, platform }) => ({
    ...descriptor(oci ? MEDIA.ociManifest : MEDIA.dockerManifest, manifest),
    platform: { ...platform },
  }));
  if (oci) return jsonContent({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests });
  return jsonContent({ schemaVersion: 2, mediaType: MEDIA.dockerList, manifests }, 3);
}

export interface Signature {
  readonly manifest: Content;
  readonly config: Content;
  readonly payload: Content;
}

/** What `cosign sign` pushes as `sha256-<hex>.sig`: an OCI manifest whose one layer is the simple-signing payload. */
export function cosignSignature(rng: Rng, repository: string, signedDigest: string): Signature {
  const payload = jsonContent({
    critical: {
      identity: { 'docker-reference': `registry.example.com/${repository}` },
      image: { 'docker-manifest-digest': signedDigest },
      type: 'cosign container image signature',
    },
    optional: null,
  });
  const zero = '0001-01-01T00:00:00Z';
  const config = jsonContent({
    architecture: '',
    created: zero,
    history: [{ created: zero }],
    os: '',
    rootfs: { type: 'layers', diff_ids: [`sha256:${payload.hex}`] },
    config: {},
  });
  const layer: Descriptor = {
    ...descriptor(MEDIA.cosignPayload, payload),
    annotations: { 'dev.cosignproject.cosign/signature': rng.bytes(71).toString('base64') },
  };
  const manifest = jsonContent({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: descriptor(MEDIA.ociConfig, config),
    layers: [layer],
  });
  return { manifest, config, payload };
}
