import type { Digest } from '../../src/model/names.js';
import {
  buildImage,
  buildIndex,
  buildSignature,
  signatureTag,
  type BuiltImage,
  type BuiltIndex,
  type BuiltManifest,
  type ImageSpec,
  type IndexSpec,
  type Platform,
} from './images.js';
import { pushImage, pushIndex, pushSignature, pushUntagged, tagManifest } from './http.js';

/**
 * The bundled sample registry (fixtures/sample-registry), as data. The
 * committed tree is what pushing these steps to the real registry writes;
 * the fixture test rebuilds the same manifests from these specs (no registry
 * needed) and checks the committed tree against them.
 *
 * Ages are how long before "now" each tag was pushed (fixtures/sample-ages.json,
 * applied as mtimes of current/link by fixtures/ages.mjs). With
 * `--older-than 30d --keep-last 2` per repository they give a mix of kept,
 * too-young and selected tags, shared manifests, shared layers and a signature.
 */

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

// Base layers shared on purpose (same seed + size = same blob).
const BASE = { seed: 'base/debian', size: 4096 };
const BASE_2 = { seed: 'base/debian-2', size: 4096 };
const BASE_ARM64 = { seed: 'base/debian-arm64', size: 4096 };
const BASE_NODE = { seed: 'base/node', size: 3072 };
const BASE_ALPINE = { seed: 'base/alpine', size: 3072 };
const app = (seed: string, size = 1024) => ({ seed: `${seed}/app`, size });

const i2Child = (tag: string, arch: 'amd64' | 'arm64'): ImageSpec =>
  arch === 'amd64'
    ? { seed: `i2/${tag}/amd64`, platform: AMD64, layers: [BASE, app(`i2/${tag}/amd64`)] }
    : { seed: `i2/${tag}/arm64`, platform: ARM64, layers: [BASE_ARM64, app(`i2/${tag}/arm64`)] };

export type SampleStep =
  | { readonly kind: 'image'; readonly repo: string; readonly tag: string; readonly age: string; readonly image: ImageSpec }
  | { readonly kind: 'index'; readonly repo: string; readonly tag: string; readonly age: string; readonly index: IndexSpec }
  /** Push the manifest of an earlier tag of the same repository under another tag. */
  | { readonly kind: 'retag'; readonly repo: string; readonly tag: string; readonly age: string; readonly of: string }
  /** cosign-style signature of an earlier tag's manifest; the tag is `sha256-<hex>.sig`. */
  | { readonly kind: 'signature'; readonly repo: string; readonly age: string; readonly of: string }
  | { readonly kind: 'untagged'; readonly repo: string; readonly image: ImageSpec };

/** In push order (oldest first). */
export const SAMPLE_STEPS: readonly SampleStep[] = [
  // i1: docker schema 2. T11/T12 share BASE; T13 is rebased; stable -> T12, latest -> T13.
  { kind: 'image', repo: 'i1', tag: 'T11', age: '200d', image: { seed: 'i1/T11', layers: [BASE, app('i1/T11')] } },
  { kind: 'untagged', repo: 'i1', image: { seed: 'i1/untagged', layers: [BASE, app('i1/untagged', 1536)] } },
  { kind: 'image', repo: 'i1', tag: 'T12', age: '120d', image: { seed: 'i1/T12', layers: [BASE, app('i1/T12')] } },
  { kind: 'image', repo: 'i1', tag: 'T13', age: '46d', image: { seed: 'i1/T13', layers: [BASE_2, app('i1/T13')] } },
  { kind: 'retag', repo: 'i1', tag: 'latest', age: '45d', of: 'T13' },
  { kind: 'retag', repo: 'i1', tag: 'stable', age: '10d', of: 'T12' },
  // i2: docker manifest lists, amd64 children on i1's BASE. T23 reuses T22's arm64 child.
  { kind: 'index', repo: 'i2', tag: 'T21', age: '180d', index: { children: [i2Child('T21', 'amd64'), i2Child('T21', 'arm64')] } },
  { kind: 'index', repo: 'i2', tag: 'T22', age: '100d', index: { children: [i2Child('T22', 'amd64'), i2Child('T22', 'arm64')] } },
  { kind: 'index', repo: 'i2', tag: 'T23', age: '20d', index: { children: [i2Child('T23', 'amd64'), i2Child('T22', 'arm64')] } },
  { kind: 'index', repo: 'i2', tag: 'T24', age: '2d', index: { children: [i2Child('T24', 'amd64'), i2Child('T24', 'arm64')] } },
  // i5: OCI image manifests and a cosign signature of T51 (classic tag form, no subject).
  { kind: 'image', repo: 'i5', tag: 'T51', age: '90d', image: { format: 'oci', seed: 'i5/T51', layers: [BASE_ALPINE, app('i5/T51')] } },
  { kind: 'signature', repo: 'i5', age: '89d', of: 'T51' },
  { kind: 'image', repo: 'i5', tag: 'T52', age: '15d', image: { format: 'oci', seed: 'i5/T52', layers: [BASE_ALPINE, app('i5/T52')] } },
  // team/app (docker) holds team/app/api (OCI) inside it; both use BASE_NODE.
  { kind: 'image', repo: 'team/app', tag: 'pr-17', age: '60d', image: { seed: 'team/app/pr-17', layers: [BASE_NODE, app('team/app/pr-17')] } },
  { kind: 'image', repo: 'team/app', tag: 'main-41', age: '35d', image: { seed: 'team/app/main-41', layers: [BASE_NODE, app('team/app/main-41')] } },
  { kind: 'image', repo: 'team/app', tag: 'v1.2.3', age: '20d', image: { seed: 'team/app/v1.2.3', layers: [BASE_NODE, app('team/app/v1.2.3')] } },
  { kind: 'image', repo: 'team/app', tag: 'main-42', age: '3d', image: { seed: 'team/app/main-42', layers: [BASE_NODE, app('team/app/main-42')] } },
  { kind: 'retag', repo: 'team/app', tag: 'latest', age: '2d', of: 'main-42' },
  { kind: 'image', repo: 'team/app/api', tag: 'v1.0.0', age: '200d', image: { format: 'oci', seed: 'team/app/api/v1.0.0', layers: [BASE_NODE, app('team/app/api/v1.0.0')] } },
  { kind: 'image', repo: 'team/app/api', tag: 'v1.2.3', age: '100d', image: { format: 'oci', seed: 'team/app/api/v1.2.3', layers: [BASE_NODE, app('team/app/api/v1.2.3')] } },
  { kind: 'image', repo: 'team/app/api', tag: 'main-7', age: '26h', image: { format: 'oci', seed: 'team/app/api/main-7', layers: [BASE_NODE, app('team/app/api/main-7')] } },
  { kind: 'retag', repo: 'team/app/api', tag: 'latest', age: '1d', of: 'main-7' },
];

export interface SampleTag {
  readonly repository: string;
  readonly tag: string;
  readonly age: string;
  readonly manifest: BuiltManifest;
  /** The image or index behind the tag (for a retag, the original's). */
  readonly content: BuiltImage | BuiltIndex;
}

export interface Sample {
  /** Keyed `repo:tag`, in push order. */
  readonly tags: ReadonlyMap<string, SampleTag>;
  readonly untagged: ReadonlyArray<{ readonly repository: string; readonly manifest: BuiltManifest; readonly image: BuiltImage }>;
}

/** Builds every manifest of the sample without a registry: the expected content. */
export function buildSample(steps: readonly SampleStep[] = SAMPLE_STEPS): Sample {
  const tags = new Map<string, SampleTag>();
  const untagged: Array<{ repository: string; manifest: BuiltManifest; image: BuiltImage }> = [];
  const earlier = (repo: string, tag: string): SampleTag => {
    const found = tags.get(`${repo}:${tag}`);
    if (found === undefined) throw new Error(`sample: ${repo}:${tag} is used before it is pushed`);
    return found;
  };
  for (const step of steps) {
    switch (step.kind) {
      case 'image': {
        const content = buildImage(step.image);
        tags.set(`${step.repo}:${step.tag}`, { repository: step.repo, tag: step.tag, age: step.age, manifest: content.manifest, content });
        break;
      }
      case 'index': {
        const content = buildIndex(step.index);
        tags.set(`${step.repo}:${step.tag}`, { repository: step.repo, tag: step.tag, age: step.age, manifest: content.manifest, content });
        break;
      }
      case 'retag': {
        const of = earlier(step.repo, step.of);
        tags.set(`${step.repo}:${step.tag}`, { ...of, tag: step.tag, age: step.age });
        break;
      }
      case 'signature': {
        const of = earlier(step.repo, step.of);
        const content = buildSignature(of.manifest, { dockerReference: `registry.example.test/${step.repo}` });
        const tag = signatureTag(of.manifest.digest);
        tags.set(`${step.repo}:${tag}`, { repository: step.repo, tag, age: step.age, manifest: content.manifest, content });
        break;
      }
      case 'untagged': {
        const image = buildImage(step.image);
        untagged.push({ repository: step.repo, manifest: image.manifest, image });
        break;
      }
    }
  }
  return { tags, untagged };
}

/** Pushes the sample to a running registry, in order; returns what was pushed. */
export async function pushSample(url: string, steps: readonly SampleStep[] = SAMPLE_STEPS): Promise<Sample> {
  const sample = buildSample(steps);
  for (const step of steps) {
    switch (step.kind) {
      case 'image':
        await pushImage(url, step.repo, step.tag, step.image);
        break;
      case 'index':
        await pushIndex(url, step.repo, step.tag, step.index);
        break;
      case 'retag': {
        const of = sample.tags.get(`${step.repo}:${step.of}`);
        if (of === undefined) throw new Error(`sample: ${step.repo}:${step.of} missing`);
        await tagManifest(url, step.repo, step.tag, of.manifest);
        break;
      }
      case 'signature': {
        const of = sample.tags.get(`${step.repo}:${step.of}`);
        if (of === undefined) throw new Error(`sample: ${step.repo}:${step.of} missing`);
        await pushSignature(url, step.repo, of.manifest, { dockerReference: `registry.example.test/${step.repo}` });
        break;
      }
      case 'untagged':
        await pushUntagged(url, step.repo, step.image);
        break;
    }
  }
  return sample;
}

/** Every blob digest the sample stores: manifests (tagged, untagged, index children), configs, layers. */
export function sampleBlobDigests(sample: Sample): Set<Digest> {
  const out = new Set<Digest>();
  const addImage = (image: BuiltImage): void => {
    out.add(image.manifest.digest);
    out.add(image.config.digest);
    for (const l of image.layers) out.add(l.digest);
  };
  for (const t of sample.tags.values()) {
    if ('children' in t.content) {
      out.add(t.content.manifest.digest);
      for (const c of t.content.children) addImage(c);
    } else addImage(t.content);
  }
  for (const u of sample.untagged) addImage(u.image);
  return out;
}

export const AGES_VERSION = 1;

export interface AgesFile {
  readonly version: 1;
  readonly note: string;
  /** `repo:tag` -> how long ago it was pushed (`<n>m|h|d|w`). */
  readonly ages: Readonly<Record<string, string>>;
  /** Manifests in the sample that no tag points to. */
  readonly untagged: ReadonlyArray<{ readonly repository: string; readonly digest: string }>;
}

export function agesFileOf(sample: Sample): AgesFile {
  const keys = [...sample.tags.keys()].sort();
  const ages: Record<string, string> = {};
  for (const k of keys) ages[k] = sample.tags.get(k)?.age ?? '';
  return {
    version: AGES_VERSION,
    note: 'Push ages of fixtures/sample-registry (git keeps no mtimes). fixtures/ages.mjs sets each tag\'s current/link mtime to now minus its age. Made by `npm run fixtures`.',
    ages,
    untagged: sample.untagged.map((u) => ({ repository: u.repository, digest: u.manifest.digest })),
  };
}
