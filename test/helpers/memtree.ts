import { Volume, createFsFromVolume } from 'memfs';
import { posix } from 'node:path';
import type { Digest, RepositoryName, TagName } from '../../src/model/names.js';
import { storageFs, type StorageFs } from '../../src/storage/fs.js';
import { layout, type Layout } from '../../src/storage/paths.js';
import { buildImage, buildIndex, type Blob, type BuiltImage, type BuiltIndex, type BuiltManifest, type ImageSpec, type IndexSpec } from './images.js';

/**
 * A registry storage tree in memory, written the way the registry writes it
 * (blob data, _layers and revision links, tag current + index links), for
 * fast unit tests. Real-registry trees are made by test/helpers/registry.ts.
 */
export class MemRegistry {
  readonly vol = new Volume();
  readonly fs: StorageFs;
  readonly lay: Layout;
  constructor(readonly root = '/srv/registry') {
    this.fs = storageFs(createFsFromVolume(this.vol));
    this.lay = layout(root);
    this.vol.mkdirSync(this.lay.repositories, { recursive: true });
    this.vol.mkdirSync(this.lay.blobShards(), { recursive: true });
  }

  write(path: string, content: string | Uint8Array): void {
    this.vol.mkdirSync(posix.dirname(path), { recursive: true });
    this.vol.writeFileSync(path, content);
  }

  blob(b: Blob | BuiltManifest): Digest {
    this.write(this.lay.blobData(b.digest), b.bytes);
    return b.digest;
  }

  private repo(name: string): RepositoryName {
    this.vol.mkdirSync(this.lay.tags(name as RepositoryName), { recursive: true });
    return name as RepositoryName;
  }

  /** Blobs + `_layers` links + manifest blob + revision link; no tag. */
  putImage(repo: string, image: BuiltImage | ImageSpec): BuiltImage {
    const built = 'manifest' in image ? image : buildImage(image);
    const r = this.repo(repo);
    for (const b of [built.config, ...built.layers]) {
      this.blob(b);
      this.write(this.lay.layerLink(r, b.digest), b.digest);
    }
    this.blob(built.manifest);
    this.write(this.lay.revisionLink(r, built.manifest.digest), built.manifest.digest);
    return built;
  }

  putIndex(repo: string, index: BuiltIndex | IndexSpec): BuiltIndex {
    const built = 'manifest' in index ? index : buildIndex(index);
    for (const child of built.children) this.putImage(repo, child);
    const r = this.repo(repo);
    this.blob(built.manifest);
    this.write(this.lay.revisionLink(r, built.manifest.digest), built.manifest.digest);
    return built;
  }

  /** Points `tag` at `digest` as a push does: current/link and index link; mtime = pushedAt. */
  tag(repo: string, tag: string, digest: Digest, pushedAt: Date): void {
    const r = this.repo(repo);
    const t = tag as TagName;
    const current = this.lay.tagCurrentLink(r, t);
    this.write(current, digest);
    this.write(this.lay.tagIndexLink(r, t, digest), digest);
    this.vol.utimesSync(current, pushedAt, pushedAt);
  }

  exists(path: string): boolean {
    return this.vol.existsSync(path);
  }

  /** Every file path under the root, sorted (for whole-tree comparisons). */
  files(): string[] {
    return Object.keys(this.vol.toJSON(this.root)).sort();
  }

  blobBytes(): number {
    let total = 0;
    for (const path of Object.keys(this.vol.toJSON(this.lay.blobs))) {
      // stat, not the JSON content: toJSON decodes bytes as UTF-8.
      if (path.endsWith('/data')) total += this.vol.statSync(path).size;
    }
    return total;
  }
}

export const daysAgo = (now: Date, days: number) => new Date(now.getTime() - days * 86_400_000);
