import type { Digest } from '../../src/model/names.js';
import {
  MANIFEST_MEDIA_TYPES,
  MediaType,
  buildImage,
  buildIndex,
  buildSignature,
  sha256Digest,
  signatureTag,
  type Blob,
  type BuiltImage,
  type BuiltIndex,
  type BuiltManifest,
  type ImageSpec,
  type IndexSpec,
  type SignatureSpec,
} from './images.js';

/**
 * Push and pull over the registry's HTTP API (only what the tests need:
 * no auth, no chunked uploads). Every function throws an Error naming the
 * request and the registry's answer when the status is not the expected one.
 */

export interface PushedImage extends BuiltImage {
  readonly repo: string;
  /** The tag pushed, or undefined when pushed by digest only. */
  readonly tag: string | undefined;
}

export interface PushedIndex extends BuiltIndex {
  readonly repo: string;
  readonly tag: string | undefined;
}

export interface PushedSignature extends PushedImage {
  readonly tag: string;
}

function v2(url: string, repo: string, rest: string): string {
  return `${url.replace(/\/$/, '')}/v2/${repo}/${rest}`;
}

async function describeFailure(what: string, res: Response, expected: string): Promise<Error> {
  let body = '';
  try {
    body = (await res.text()).slice(0, 2000);
  } catch {
    // the body is only for the message
  }
  return new Error(`${what}: expected ${expected}, got ${res.status} ${res.statusText}${body === '' ? '' : `: ${body.trim()}`}`);
}

/**
 * Monolithic upload: `POST .../blobs/uploads/?digest=` with the bytes. 2.8
 * ignores the digest on POST and answers 202 with a Location, so then PUT
 * the bytes there (the two-step form every client falls back to).
 */
export async function pushBlob(url: string, repo: string, blob: Blob | Uint8Array): Promise<Digest> {
  const bytes = blob instanceof Uint8Array ? blob : blob.bytes;
  const digest = sha256Digest(bytes);
  const what = `push blob ${digest} to ${repo}`;
  const post = await fetch(v2(url, repo, `blobs/uploads/?digest=${encodeURIComponent(digest)}`), {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) },
    body: bytes,
  });
  if (post.status === 201) {
    await post.body?.cancel();
    return checkDigestHeader(what, post, digest);
  }
  if (post.status !== 202) throw await describeFailure(`${what}: POST`, post, '201 or 202');
  await post.body?.cancel();
  const location = post.headers.get('location');
  if (location === null) throw new Error(`${what}: POST answered 202 without a Location header`);
  const target = new URL(location, url);
  target.searchParams.set('digest', digest);
  const put = await fetch(target, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) },
    body: bytes,
  });
  if (put.status !== 201) throw await describeFailure(`${what}: PUT ${target.pathname}`, put, '201');
  await put.body?.cancel();
  return checkDigestHeader(what, put, digest);
}

function checkDigestHeader(what: string, res: Response, expected: Digest): Digest {
  const got = res.headers.get('docker-content-digest');
  if (got !== null && got !== expected) throw new Error(`${what}: registry reports digest ${got}, computed ${expected}`);
  return expected;
}

/** `PUT /v2/<repo>/manifests/<ref>` with the manifest's own media type. */
export async function pushManifest(url: string, repo: string, ref: string, manifest: BuiltManifest): Promise<Digest> {
  const what = `push manifest ${manifest.digest} to ${repo}:${ref}`;
  const res = await fetch(v2(url, repo, `manifests/${ref}`), {
    method: 'PUT',
    headers: { 'Content-Type': manifest.mediaType },
    body: manifest.bytes,
  });
  if (res.status !== 201) throw await describeFailure(what, res, '201');
  await res.body?.cancel();
  return checkDigestHeader(what, res, manifest.digest);
}

async function pushImageContent(url: string, repo: string, ref: string, image: BuiltImage): Promise<void> {
  await pushBlob(url, repo, image.config);
  for (const layer of image.layers) await pushBlob(url, repo, layer);
  await pushManifest(url, repo, ref, image.manifest);
}

function built(image: ImageSpec | BuiltImage): BuiltImage {
  return 'manifest' in image ? image : buildImage(image);
}

/** A single-platform image: config, layers, then the manifest under `tag`. */
export async function pushImage(url: string, repo: string, tag: string, image: ImageSpec | BuiltImage): Promise<PushedImage> {
  const b = built(image);
  await pushImageContent(url, repo, tag, b);
  return { ...b, repo, tag };
}

/** A single-platform image pushed by digest only: the manifest has no tag. */
export async function pushUntagged(url: string, repo: string, image: ImageSpec | BuiltImage): Promise<PushedImage> {
  const b = built(image);
  await pushImageContent(url, repo, b.manifest.digest, b);
  return { ...b, repo, tag: undefined };
}

/** A multi-platform image: each child by digest, then the index under `tag` (or by digest when undefined). */
export async function pushIndex(url: string, repo: string, tag: string | undefined, index: IndexSpec | BuiltIndex): Promise<PushedIndex> {
  const b = 'manifest' in index ? index : buildIndex(index);
  for (const child of b.children) await pushImageContent(url, repo, child.manifest.digest, child);
  await pushManifest(url, repo, tag ?? b.manifest.digest, b.manifest);
  return { ...b, repo, tag };
}

/** An existing manifest (same bytes, so same digest) under another tag. */
export async function tagManifest(url: string, repo: string, tag: string, manifest: BuiltManifest): Promise<Digest> {
  return pushManifest(url, repo, tag, manifest);
}

/** A cosign-style signature of `signed`, pushed under `sha256-<hex>.sig`. */
export async function pushSignature(
  url: string,
  repo: string,
  signed: BuiltManifest,
  spec: SignatureSpec = {},
): Promise<PushedSignature> {
  const b = buildSignature(signed, spec);
  const tag = signatureTag(signed.digest);
  await pushImageContent(url, repo, tag, b);
  return { ...b, repo, tag };
}

// ---------------------------------------------------------------- pulling

export interface PulledManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export interface Pulled {
  readonly repo: string;
  readonly ref: string;
  /** Digest of the top manifest (what `ref` resolves to). */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
  /** Every manifest fetched: the top one first, then index children depth first. */
  readonly manifests: readonly PulledManifest[];
  /** Every config and layer blob fetched, each once. */
  readonly blobs: readonly Digest[];
  /** Bytes of every distinct manifest and blob fetched. */
  readonly totalBytes: number;
}

const MEDIA_INDEXES: readonly string[] = [MediaType.dockerManifestList, MediaType.ociIndex];

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

function isDigestString(v: unknown): v is Digest {
  return typeof v === 'string' && /^sha256:[a-f0-9]{64}$/.test(v);
}

function checkDescriptor(where: string, d: RawDescriptor): { digest: Digest; size: number } {
  if (!isDigestString(d.digest)) throw new Error(`${where}: descriptor has no valid sha256 digest: ${JSON.stringify(d)}`);
  if (typeof d.size !== 'number') throw new Error(`${where}: descriptor ${d.digest} has no size`);
  return { digest: d.digest, size: d.size };
}

/** GET a manifest with every manifest type accepted; returns the Response unread. */
export async function getManifest(url: string, repo: string, ref: string): Promise<Response> {
  return fetch(v2(url, repo, `manifests/${ref}`), { headers: { Accept: MANIFEST_MEDIA_TYPES.join(', ') } });
}

export async function manifestStatus(url: string, repo: string, ref: string): Promise<number> {
  const res = await getManifest(url, repo, ref);
  await res.body?.cancel();
  return res.status;
}

export async function expectManifestStatus(url: string, repo: string, ref: string, status: number): Promise<void> {
  const res = await getManifest(url, repo, ref);
  if (res.status !== status) throw await describeFailure(`GET manifest ${repo}:${ref}`, res, String(status));
  await res.body?.cancel();
}

/**
 * Pulls `tagOrDigest` as a client would and checks every byte: the
 * manifest's sha256 equals Docker-Content-Digest (and the digest asked for),
 * index children are pulled recursively and must match their descriptors,
 * and every config and layer blob must hash to its digest and size.
 */
export async function pullAndVerify(url: string, repo: string, tagOrDigest: string): Promise<Pulled> {
  const manifests: PulledManifest[] = [];
  const blobs = new Map<Digest, number>();
  const top = await pullManifest(url, repo, tagOrDigest, undefined, manifests, blobs);
  let totalBytes = 0;
  for (const m of new Map(manifests.map((x) => [x.digest, x.bytes.length])).values()) totalBytes += m;
  for (const size of blobs.values()) totalBytes += size;
  return {
    repo,
    ref: tagOrDigest,
    digest: top.digest,
    mediaType: top.mediaType,
    bytes: top.bytes,
    manifests,
    blobs: [...blobs.keys()],
    totalBytes,
  };
}

async function pullManifest(
  url: string,
  repo: string,
  ref: string,
  expected: { digest: Digest; size: number } | undefined,
  manifests: PulledManifest[],
  blobs: Map<Digest, number>,
): Promise<PulledManifest> {
  const what = `pull ${repo}${ref.startsWith('sha256:') ? '@' : ':'}${ref}`;
  const res = await getManifest(url, repo, ref);
  if (res.status !== 200) throw await describeFailure(what, res, '200');
  const bytes = Buffer.from(await res.arrayBuffer());
  const digest = sha256Digest(bytes);
  const header = res.headers.get('docker-content-digest');
  if (header !== digest) throw new Error(`${what}: body hashes to ${digest} but Docker-Content-Digest is ${header ?? '(missing)'}`);
  if (ref.startsWith('sha256:') && ref !== digest) throw new Error(`${what}: asked for ${ref}, body hashes to ${digest}`);
  if (expected !== undefined && expected.size !== bytes.length) {
    throw new Error(`${what}: descriptor says ${expected.size} bytes, got ${bytes.length}`);
  }
  let doc: { mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch (err) {
    throw new Error(`${what}: manifest is not JSON: ${(err as Error).message}`);
  }
  const contentType = res.headers.get('content-type') ?? '';
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : contentType;
  if (typeof doc.mediaType === 'string' && contentType !== '' && contentType !== doc.mediaType) {
    throw new Error(`${what}: Content-Type ${contentType} but the manifest says mediaType ${doc.mediaType}`);
  }
  const pulled: PulledManifest = { digest, mediaType, bytes };
  manifests.push(pulled);

  const isIndex = MEDIA_INDEXES.includes(mediaType) || (doc.mediaType === undefined && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new Error(`${what}: index ${digest} has no manifests[]`);
    for (const child of doc.manifests as RawDescriptor[]) {
      const d = checkDescriptor(`${what}: child of ${digest}`, child);
      await pullManifest(url, repo, d.digest, d, manifests, blobs);
    }
    return pulled;
  }
  const refs: RawDescriptor[] = [];
  if (typeof doc.config === 'object' && doc.config !== null) refs.push(doc.config as RawDescriptor);
  else throw new Error(`${what}: image manifest ${digest} has no config`);
  if (Array.isArray(doc.layers)) refs.push(...(doc.layers as RawDescriptor[]));
  for (const r of refs) {
    const d = checkDescriptor(`${what}: blob of ${digest}`, r);
    if (blobs.has(d.digest)) continue;
    await pullBlob(url, repo, d.digest, d.size, what);
    blobs.set(d.digest, d.size);
  }
  return pulled;
}

async function pullBlob(url: string, repo: string, digest: Digest, size: number, what: string): Promise<void> {
  const res = await fetch(v2(url, repo, `blobs/${digest}`));
  if (res.status !== 200) throw await describeFailure(`${what}: GET blob ${digest}`, res, '200');
  const bytes = Buffer.from(await res.arrayBuffer());
  const got = sha256Digest(bytes);
  if (got !== digest) throw new Error(`${what}: blob ${digest} hashes to ${got} (${bytes.length} bytes)`);
  if (bytes.length !== size) throw new Error(`${what}: blob ${digest} is ${bytes.length} bytes, descriptor says ${size}`);
  const header = res.headers.get('docker-content-digest');
  if (header !== null && header !== digest) throw new Error(`${what}: blob ${digest} served with Docker-Content-Digest ${header}`);
}
