import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { layout } from '../../src/storage/paths.js';
import { MediaType, seededBytes, sha256Digest } from './images.js';

/**
 * Random and adversarial registry storage trees for the differential oracle
 * (test/integration/oracle.test.ts), written straight into storage in the
 * registry's exact on-disk format. The registry's garbage-collect, not this
 * file, decides what the trees mean: this file only knows what it wrote
 * (which tags exist, which manifests a tree names as untagged referrers of
 * which subject), never what is marked.
 *
 * Manifests are emitted from ordered key lists so that one document can
 * spell a key in another case (`Manifests`, `LAYERS`, `layer\u017f`: Go's
 * encoding/json folds them onto the field), repeat a key (the last one wins;
 * a repeated object is decoded into the same struct, so fields merge), or
 * omit its mediaType.
 */

// ---------------------------------------------------------------- PRNG

export type Rnd = () => number;

/** mulberry32: the same seed gives the same tree on every machine. */
export function prng(seed: number): Rnd {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- JSON with duplicate keys

/** An object as an ordered list of entries: keys may repeat and be spelled in any case. */
export class Obj {
  constructor(readonly entries: Array<[string, Json]>) {}
}
export type Json = null | boolean | number | string | Json[] | Obj;

export function emit(v: Json): string {
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${emit(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(emit).join(',')}]`;
  return JSON.stringify(v);
}

// ---------------------------------------------------------------- the tree

/** What the oracle needs to know about a generated tree besides its files. */
export interface OracleTree {
  readonly seed: number;
  /** Relative path under the rootdirectory -> content. */
  readonly files: Map<string, Buffer>;
  /** Relative dirs that must exist (empty revision dirs left by an API delete, every repo's `_layers`). */
  readonly dirs: Set<string>;
  /** Relative path of a tag's current/link -> its push time. */
  readonly mtimes: Map<string, Date>;
  /** Tags whose current/link is exactly a digest (what a selection may name). */
  readonly tags: Array<{ repo: string; tag: string; digest: Digest }>;
  /** Untagged OCI referrers written with a canonical `subject`: regprune keeps them while the subject stays. */
  readonly referrers: Array<{ repo: string; digest: Digest; subject: Digest }>;
  /** Which adversarial features this tree has (for the report). */
  readonly features: Set<string>;
  /** A fixed selection for `prune` (named cases); otherwise a random one from the seed. */
  readonly args?: readonly string[];
}

const REPOS = ['app', 'team/api', 'team/api/v2', 'lib', 'mirror/base'];
const NOW = Date.now();

interface Made {
  digest: Digest;
  size: number;
  mediaType: string;
  /** True for an index / manifest list. */
  index: boolean;
}

/** Options: which adversarial features may appear (default all). */
export interface TreeOptions {
  /** Features that make garbage-collect abort (unknown media type, bad revision links, unsigned schema1); default true. */
  readonly aborting?: boolean;
  /** Only these adversarial features may appear (see ADVERSARIAL); default all. */
  readonly only?: ReadonlySet<string>;
}

/** The adversarial features, each gated by `only`. Structural ones (indexes, signatures, referrers, cross-repo) always may appear. */
export const ADVERSARIAL = [
  'key-case',
  'duplicate-key',
  'config-merge',
  'no-mediaType',
  'foreign-layer',
  'missing-child',
  'schema1-signed',
  'schema1-unsigned',
  'unknown-media-type',
  'api-deleted',
  'revision-blob-missing',
  'tag-link-newline',
  'revision-link-newline',
  'layer-link-newline',
] as const;
const ABORTING = new Set(['schema1-unsigned', 'unknown-media-type', 'revision-link-newline']);

export function generateTree(seed: number, opts: TreeOptions = {}): OracleTree {
  const rnd = prng(seed * 2654435761);
  const chance = (p: number) => rnd() < p;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const aborting = opts.aborting ?? true;
  /** Draws first, so the tree's other choices do not depend on which features are allowed. */
  const feat = (name: (typeof ADVERSARIAL)[number], p: number): boolean => {
    const hit = chance(p);
    return hit && (opts.only === undefined || opts.only.has(name)) && (aborting || !ABORTING.has(name));
  };

  const files = new Map<string, Buffer>();
  const dirs = new Set<string>();
  const mtimes = new Map<string, Date>();
  const tags: OracleTree['tags'] = [];
  const referrers: OracleTree['referrers'] = [];
  const features = new Set<string>();
  const lay = layout('');
  const rel = (p: string) => p.replace(/^\/+/, '');
  const R = (r: string) => r as RepositoryName;

  const putBlob = (bytes: Buffer): Digest => {
    const d = sha256Digest(bytes);
    files.set(rel(lay.blobData(d)), bytes);
    return d;
  };
  const link = (d: string) => Buffer.from(d, 'utf8');
  const repoInit = (repo: string) => {
    dirs.add(rel(lay.layers(R(repo))));
    dirs.add(rel(lay.tags(R(repo))));
  };
  const layerLink = (repo: string, d: Digest) => files.set(rel(lay.layerLink(R(repo), d)), link(d));
  const revision = (repo: string, d: Digest) => files.set(rel(lay.revisionLink(R(repo), d)), link(d));

  // Layer pool: shared between manifests and repositories; small, odd sizes.
  const pool: Array<{ digest: Digest; size: number }> = [];
  for (let i = 0; i < 8; i++) {
    const bytes = seededBytes(`oracle/${seed % 5}/pool/${i}`, int(1, 3000));
    pool.push({ digest: putBlob(bytes), size: bytes.length });
  }
  let counter = 0;
  const ownLayer = () => {
    const bytes = seededBytes(`oracle/${seed}/own/${counter++}`, int(1, 3000));
    return { digest: putBlob(bytes), size: bytes.length };
  };

  // ---- key spellings Go's decoder folds onto the field
  const spell = (key: 'layers' | 'manifests' | 'config' | 'digest' | 'mediaType'): string => {
    if (!feat('key-case', 0.12)) return key;
    features.add(`key-case:${key}`);
    const variants: Record<string, string[]> = {
      layers: ['Layers', 'LAYERS', 'layer\u017f', 'lAyErS'],
      manifests: ['Manifests', 'MANIFESTS', 'manife\u017fts', 'manifest\u017f'],
      config: ['Config', 'CONFIG', 'conFig'],
      digest: ['Digest', 'DIGEST'],
      mediaType: ['MediaType', 'mediatype', 'MEDIATYPE'],
    };
    return pick(variants[key] ?? [key]);
  };

  const descriptor = (mediaType: string, d: { digest: Digest; size: number }, extra: Array<[string, Json]> = []): Obj =>
    new Obj([['mediaType', mediaType], [spell('digest'), d.digest], ['size', d.size], ...extra]);

  /** A list-valued field, sometimes repeated (the last one wins) with a decoy first. */
  const listField = (key: 'layers' | 'manifests', items: Obj[], decoy: () => Obj[]): Array<[string, Json]> => {
    if (feat('duplicate-key', 0.08)) {
      features.add(`duplicate-key:${key}`);
      return [
        [spell(key), decoy()],
        [spell(key), items],
      ];
    }
    return [[spell(key), items]];
  };

  const writeManifest = (repo: string, doc: Obj | Buffer, mediaType: string, index: boolean): Made => {
    const bytes = doc instanceof Obj ? Buffer.from(emit(doc), 'utf8') : doc;
    const digest = putBlob(bytes);
    revision(repo, digest);
    return { digest, size: bytes.length, mediaType, index };
  };

  const mediaTypeEntry = (mt: string, omittable: boolean): Array<[string, Json]> => {
    if (omittable && feat('no-mediaType', 0.25)) {
      features.add('no-mediaType');
      return [];
    }
    return [[spell('mediaType'), mt]];
  };

  // ---- images
  const image = (repo: string, opts2: { oci?: boolean; subject?: Made; artifact?: boolean } = {}): Made => {
    const oci = opts2.oci ?? chance(0.5);
    const layerMt = oci ? MediaType.ociLayer : MediaType.dockerLayer;
    const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: `${seed}/${counter++}` }), 'utf8');
    const config = { digest: putBlob(configBytes), size: configBytes.length };
    layerLink(repo, config.digest);
    const layers: Obj[] = [];
    for (let i = int(opts2.artifact === true ? 1 : 0, 3); i > 0; i--) {
      const l = chance(0.5) ? pick(pool) : ownLayer();
      layerLink(repo, l.digest);
      layers.push(descriptor(layerMt, l));
    }
    if (feat('foreign-layer', 0.1)) {
      // A foreign / non-distributable layer: named by `urls`, never in the registry.
      features.add('foreign-layer');
      const absent = { digest: sha256Digest(seededBytes(`oracle/${seed}/foreign/${counter++}`, 64)), size: 64 };
      layers.push(
        descriptor(oci ? 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', absent, [
          ['urls', ['https://example.test/foreign/layer.tar.gz']],
        ]),
      );
    }
    const mt = oci ? MediaType.ociManifest : MediaType.dockerManifest;
    const entries: Array<[string, Json]> = [['schemaVersion', 2], ...mediaTypeEntry(mt, oci)];
    if (opts2.artifact === true) entries.push(['artifactType', 'application/vnd.example.sbom+json']);
    const configKey = spell('config');
    if (feat('config-merge', 0.05)) {
      // A repeated object is decoded into the same struct: the second one's missing fields keep the first's values.
      features.add('duplicate-key:config-merge');
      entries.push([configKey, descriptor(oci ? MediaType.ociConfig : MediaType.dockerConfig, config)]);
      entries.push(['config', new Obj([['size', config.size]])]);
    } else {
      entries.push([configKey, descriptor(oci ? MediaType.ociConfig : MediaType.dockerConfig, config)]);
    }
    entries.push(...listField('layers', layers, () => [descriptor(layerMt, ownLayer())]));
    if (opts2.subject !== undefined) {
      features.add('subject');
      entries.push(['subject', descriptor(opts2.subject.mediaType, opts2.subject)]);
    }
    return writeManifest(repo, new Obj(entries), mt, false);
  };

  // ---- indexes (children already written), nested or not
  const indexOf = (repo: string, children: Made[], oci: boolean, extraChildren: Obj[] = []): Made => {
    const mt = oci ? MediaType.ociIndex : MediaType.dockerManifestList;
    const descs = [
      ...children.map((c, i) =>
        descriptor(c.mediaType, c, c.index ? [] : [['platform', new Obj([['architecture', ['amd64', 'arm64', 's390x'][i % 3] ?? 'amd64'], ['os', 'linux']])]]),
      ),
      ...extraChildren,
    ];
    const entries: Array<[string, Json]> = [['schemaVersion', 2], ...mediaTypeEntry(mt, oci)];
    entries.push(...listField('manifests', descs, () => [descriptor(MediaType.ociManifest, ownLayer())]));
    return writeManifest(repo, new Obj(entries), mt, true);
  };

  // ---- schema1 (2.8 still reads it): signed prettyjws, rarely unsigned
  const schema1 = (repo: string, signed: boolean): Made => {
    const layers = [chance(0.5) ? pick(pool) : ownLayer(), ownLayer()];
    for (const l of layers) layerLink(repo, l.digest);
    const payload = {
      schemaVersion: 1,
      name: repo,
      tag: `s1-${counter++}`,
      architecture: 'amd64',
      fsLayers: layers.map((l) => ({ blobSum: l.digest })),
      history: layers.map((_, i) => ({ v1Compatibility: JSON.stringify({ id: createHash('sha256').update(`${seed}/${counter}/${i}`).digest('hex') }) })),
    };
    const pretty = JSON.stringify(payload, null, 3);
    if (!signed) {
      features.add('schema1-unsigned');
      return writeManifest(repo, Buffer.from(pretty, 'utf8'), 'application/vnd.docker.distribution.manifest.v1+json', false);
    }
    features.add('schema1-signed');
    return writeManifest(repo, signSchema1(pretty), 'application/vnd.docker.distribution.manifest.v1+prettyjws', false);
  };

  const unknownMediaType = (repo: string): Made => {
    features.add('unknown-media-type');
    const l = ownLayer();
    return writeManifest(
      repo,
      new Obj([
        ['schemaVersion', 2],
        ['mediaType', 'application/vnd.example.unknown.manifest.v1+json'],
        ['layers', [descriptor(MediaType.ociLayer, l)]],
      ]),
      'application/vnd.example.unknown.manifest.v1+json',
      false,
    );
  };

  // ---------------------------------------------------------------- per repository
  const repos = REPOS.filter(() => chance(0.55));
  if (repos.length === 0) repos.push(pick(REPOS));
  const made = new Map<string, Made[]>();
  const tagged = new Map<string, Map<string, Digest>>();
  const tagWrite = (repo: string, tag: string, digest: Digest, bytes?: Buffer) => {
    const t = tag as TagName;
    const current = rel(lay.tagCurrentLink(R(repo), t));
    files.set(current, bytes ?? link(digest));
    files.set(rel(lay.tagIndexLink(R(repo), t, digest)), link(digest));
    mtimes.set(current, new Date(NOW - int(0, 200) * 86_400_000 - int(0, 86_399) * 1000));
    const m = tagged.get(repo) ?? new Map<string, Digest>();
    m.set(tag, digest);
    tagged.set(repo, m);
  };

  for (const repo of repos) {
    repoInit(repo);
    const here: Made[] = [];
    made.set(repo, here);
    const n = int(1, 5);
    let t = 0;
    const tag = (m: Made) => tagWrite(repo, chance(0.1) ? 'latest' : `v${t++}`, m.digest);
    for (let i = 0; i < n; i++) {
      const r = rnd();
      let top: Made;
      if (r < 0.45) {
        top = image(repo);
        here.push(top);
      } else if (r < 0.8) {
        // Multi-platform: 1-3 children, sometimes one shared with an earlier index or image, sometimes an index inside.
        const oci = chance(0.6);
        const children: Made[] = [];
        for (let c = int(1, 3); c > 0; c--) children.push(image(repo, { oci }));
        const earlier = here.filter((m) => !m.index);
        if (earlier.length > 0 && chance(0.35)) {
          features.add('shared-child');
          children.push(pick(earlier));
        }
        const extra: Obj[] = [];
        if (feat('missing-child', 0.12)) {
          // A child whose manifest is in no repository (or only in another one).
          features.add('missing-child');
          const ghost = ownLayer();
          files.delete(rel(lay.blobData(ghost.digest)));
          extra.push(descriptor(oci ? MediaType.ociManifest : MediaType.dockerManifest, ghost));
        }
        if (oci && chance(0.3)) {
          features.add('nested-index');
          const inner = indexOf(repo, [image(repo, { oci: true }), image(repo, { oci: true })], true);
          here.push(inner);
          children.push(inner);
          if (chance(0.3)) tag(inner);
        }
        for (const ch of children) if (!here.includes(ch)) here.push(ch);
        top = indexOf(repo, children, oci, extra);
        here.push(top);
        if (chance(0.25)) {
          features.add('child-tagged');
          tag(pick(children));
        }
      } else if (r < 0.88 && (opts.only === undefined || opts.only.has('schema1-signed') || opts.only.has('schema1-unsigned'))) {
        const unsigned = feat('schema1-unsigned', 0.3);
        top = unsigned || opts.only === undefined || opts.only.has('schema1-signed') ? schema1(repo, !unsigned) : image(repo);
        here.push(top);
      } else if (r < 0.92 && feat('unknown-media-type', 0.4)) {
        top = unknownMediaType(repo);
        here.push(top);
      } else {
        top = image(repo);
        here.push(top);
      }
      // Tagged 0-2 times.
      const copies = chance(0.2) ? 0 : chance(0.2) ? 2 : 1;
      if (copies === 0) features.add('untagged');
      for (let c = 0; c < copies; c++) tag(top);

      // Signatures, referrers of what is here.
      if (chance(0.25)) {
        features.add('cosign-sig');
        const sig = image(repo, { oci: true, artifact: true, ...(chance(0.3) ? { subject: top } : {}) });
        here.push(sig);
        tagWrite(repo, `${top.digest.replace(':', '-')}.sig`, sig.digest);
      }
      if (chance(0.2)) {
        const ref = image(repo, { oci: true, artifact: true, subject: top });
        here.push(ref);
        if (chance(0.5)) {
          // OCI 1.1 referrers fallback tag: `sha256-<hex>` pointing at an index of the referrers.
          features.add('referrers-tag');
          const idx = indexOf(repo, [ref], true);
          here.push(idx);
          tagWrite(repo, top.digest.replace(':', '-'), idx.digest);
        } else {
          features.add('untagged-referrer');
          referrers.push({ repo, digest: ref.digest, subject: top.digest });
        }
      }
    }
  }

  // ---- the same manifest in two repositories (and so shared blobs across them)
  if (repos.length > 1 && chance(0.5)) {
    features.add('cross-repo');
    const [from, to] = [pick(repos), pick(repos)];
    if (from !== to) {
      const m = pick(made.get(from) ?? []);
      if (m !== undefined && !m.index) {
        revision(to, m.digest);
        // 2.8's garbage-collect never reads _layers, so the mount's layer links do not matter here.
        if (chance(0.5)) tagWrite(to, 'mounted', m.digest);
      }
    }
  }

  // ---------------------------------------------------------------- damage
  // Revisions deleted through the API: link gone, dir kept, tags pointing at it gone.
  for (const repo of repos) {
    for (const m of made.get(repo) ?? []) {
      if (!feat('api-deleted', 0.06)) continue;
      features.add('api-deleted');
      const dir = rel(lay.revision(R(repo), m.digest));
      files.delete(`${dir}/link`);
      dirs.add(dir);
      for (const [tag, d] of tagged.get(repo) ?? []) {
        if (d !== m.digest) continue;
        const tagDir = rel(lay.tag(R(repo), tag as TagName));
        for (const p of [...files.keys()]) if (p.startsWith(`${tagDir}/`)) files.delete(p);
        for (const p of [...mtimes.keys()]) if (p.startsWith(`${tagDir}/`)) mtimes.delete(p);
        tagged.get(repo)?.delete(tag);
      }
    }
  }
  // A manifest blob gone while its revision link stays.
  if (feat('revision-blob-missing', 0.05)) {
    const repo = pick(repos);
    const m = pick(made.get(repo) ?? []);
    if (m !== undefined && files.has(rel(lay.revisionLink(R(repo), m.digest)))) {
      features.add('revision-blob-missing');
      files.delete(rel(lay.blobData(m.digest)));
    }
  }
  // Links with stray bytes.
  if (feat('tag-link-newline', 0.08)) {
    const repo = pick(repos);
    const entries = [...(tagged.get(repo) ?? [])];
    if (entries.length > 0) {
      const [tag, d] = pick(entries);
      features.add('tag-link-newline');
      files.set(rel(lay.tagCurrentLink(R(repo), tag as TagName)), Buffer.from(`${d}\n`));
      tagged.get(repo)?.delete(tag);
    }
  }
  if (feat('revision-link-newline', 0.06)) {
    const repo = pick(repos);
    const m = pick(made.get(repo) ?? []);
    const p = m === undefined ? undefined : rel(lay.revisionLink(R(repo), m.digest));
    if (p !== undefined && files.has(p) && m !== undefined) {
      features.add('revision-link-newline');
      files.set(p, Buffer.from(`${m.digest}\n`));
    }
  }
  if (feat('layer-link-newline', 0.08)) {
    const repo = pick(repos);
    const layerLinks = [...files.keys()].filter((p) => p.startsWith(`${rel(lay.layers(R(repo)))}/`));
    if (layerLinks.length > 0) {
      features.add('layer-link-newline');
      const p = pick(layerLinks);
      files.set(p, Buffer.concat([files.get(p) ?? Buffer.alloc(0), Buffer.from('\n')]));
    }
  }

  for (const [repo, m] of tagged) for (const [tag, digest] of m) tags.push({ repo, tag, digest });
  tags.sort((a, b) => (`${a.repo}:${a.tag}` < `${b.repo}:${b.tag}` ? -1 : 1));
  return { seed, files, dirs, mtimes, tags, referrers: referrers.filter((r) => files.has(rel(lay.revisionLink(R(r.repo), r.digest)))), features };
}

/** Writes the tree under `root` (which should be empty). */
export async function writeTree(root: string, tree: OracleTree): Promise<void> {
  const made = new Set<string>();
  const ensure = async (dir: string) => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  for (const d of tree.dirs) await ensure(`${root}/${d}`);
  for (const [p, bytes] of tree.files) {
    await ensure(dirname(`${root}/${p}`));
    await writeFile(`${root}/${p}`, bytes);
  }
  for (const [p, at] of tree.mtimes) if (tree.files.has(p)) await utimes(`${root}/${p}`, at, at);
}

// ---------------------------------------------------------------- schema1 signing (libtrust's pretty JWS)

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');
let signingKey: ReturnType<typeof generateKeyPairSync> | undefined;

/**
 * A signed schema1 manifest as docker 1.x pushed them: the 3-space-indented
 * payload with a `signatures` array spliced in before the closing brace; each
 * signature's protected header says how long the payload is and what tail
 * (`\n}`) completes it. Signed for real with a P-256 key (ES256).
 */
export function signSchema1(pretty: string): Buffer {
  signingKey ??= generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = signingKey.publicKey.export({ format: 'jwk' }) as { crv: string; x: string; y: string; kty: string };
  const formatLength = pretty.lastIndexOf('\n}');
  const formatTail = pretty.slice(formatLength);
  const protectedHeader = b64url(JSON.stringify({ formatLength, formatTail: b64url(formatTail), time: '2016-01-01T00:00:00Z' }));
  const payload = b64url(pretty);
  const signature = cryptoSign('sha256', Buffer.from(`${protectedHeader}.${payload}`), { key: signingKey.privateKey, dsaEncoding: 'ieee-p1363' });
  const kid = createHash('sha256').update(jwk.x + jwk.y).digest('hex').slice(0, 48).toUpperCase().match(/.{4}/g)?.join(':') ?? '';
  const sigs = [{ header: { jwk: { crv: jwk.crv, kid, kty: jwk.kty, x: jwk.x, y: jwk.y }, alg: 'ES256' }, signature: b64url(signature), protected: protectedHeader }];
  const sigJson = JSON.stringify(sigs, null, 3).split('\n').join('\n   ');
  return Buffer.from(`${pretty.slice(0, formatLength)},\n   "signatures": ${sigJson}${formatTail}`, 'utf8');
}

// ---------------------------------------------------------------- hand-built minimal trees

/** Builds a small tree by hand, for the oracle's named cases. */
export class TreeBuilder {
  private readonly files = new Map<string, Buffer>();
  private readonly dirs = new Set<string>();
  private readonly mtimes = new Map<string, Date>();
  private readonly tags: OracleTree['tags'] = [];
  private readonly referrers: OracleTree['referrers'] = [];
  private readonly lay = layout('');
  private n = 0;

  private rel(p: string): string {
    return p.replace(/^\/+/, '');
  }

  /** A blob (in the store) of `size` seeded bytes, linked into `repo`'s _layers. */
  blob(repo: string, size = 100): { digest: Digest; size: number } {
    const bytes = seededBytes(`tree-builder/${this.n++}`, size);
    const digest = sha256Digest(bytes);
    this.files.set(this.rel(this.lay.blobData(digest)), bytes);
    this.repo(repo);
    this.files.set(this.rel(this.lay.layerLink(repo as RepositoryName, digest)), Buffer.from(digest));
    return { digest, size };
  }

  repo(repo: string): this {
    this.dirs.add(this.rel(this.lay.layers(repo as RepositoryName)));
    this.dirs.add(this.rel(this.lay.tags(repo as RepositoryName)));
    return this;
  }

  /** A manifest blob and its revision link (`link` overrides the link's bytes). */
  manifest(repo: string, doc: Obj | string | Buffer, opts: { link?: string } = {}): { digest: Digest; size: number } {
    const bytes = doc instanceof Obj ? Buffer.from(emit(doc), 'utf8') : Buffer.from(doc);
    const digest = sha256Digest(bytes);
    this.files.set(this.rel(this.lay.blobData(digest)), bytes);
    this.repo(repo);
    this.files.set(this.rel(this.lay.revisionLink(repo as RepositoryName, digest)), Buffer.from(opts.link ?? digest));
    return { digest, size: bytes.length };
  }

  /** Tag pushed `days` ago. */
  tag(repo: string, tag: string, digest: Digest, days = 100): this {
    const current = this.rel(this.lay.tagCurrentLink(repo as RepositoryName, tag as TagName));
    this.files.set(current, Buffer.from(digest));
    this.files.set(this.rel(this.lay.tagIndexLink(repo as RepositoryName, tag as TagName, digest)), Buffer.from(digest));
    this.mtimes.set(current, new Date(NOW - days * 86_400_000));
    this.tags.push({ repo, tag, digest });
    return this;
  }

  /** What `DELETE /v2/<repo>/manifests/<digest>` leaves: the revision dir without its link. */
  apiDelete(repo: string, digest: Digest): this {
    const dir = this.rel(this.lay.revision(repo as RepositoryName, digest));
    this.files.delete(`${dir}/link`);
    this.dirs.add(dir);
    return this;
  }

  referrer(repo: string, digest: Digest, subject: Digest): this {
    this.referrers.push({ repo, digest, subject });
    return this;
  }

  build(args: readonly string[], features: readonly string[] = []): OracleTree {
    return { seed: 0, files: this.files, dirs: this.dirs, mtimes: this.mtimes, tags: this.tags, referrers: this.referrers, features: new Set(features), args };
  }
}

/** `{mediaType, digest, size}` as an ordered object. */
export function desc(mediaType: string, d: { digest: Digest; size: number }, extra: Array<[string, Json]> = []): Obj {
  return new Obj([['mediaType', mediaType], ['digest', d.digest], ['size', d.size], ...extra]);
}
