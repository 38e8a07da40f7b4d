import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { errnoCode } from '../model/errors.js';
import { readPlainMany, type PlainRead, type StorageFs } from './fs.js';
import type { StorageWarning } from './warnings.js';

export type LinkRead =
  | { readonly ok: true; readonly digest: Digest; readonly mtimeMs: number }
  | { readonly ok: false; readonly warning: StorageWarning };

/** The problem of a link caught between the registry's truncate and write. */
export const EMPTY_LINK = 'empty link file';

/** Why the bytes of a link file are not a link the registry can use. */
export function linkProblem(text: string): string | undefined {
  if (text.length === 0) return EMPTY_LINK;
  if (isDigest(text)) return undefined;
  if (/[\r\n]$/.test(text) && isDigest(text.trimEnd())) {
    return 'link ends with a newline (garbage-collect aborts on it: invalid checksum digest length)';
  }
  const colon = text.indexOf(':');
  if (colon < 0) return 'link has no algorithm prefix';
  const algorithm = text.slice(0, colon);
  if (algorithm !== 'sha256') return `unknown digest algorithm ${JSON.stringify(algorithm)}`;
  const hex = text.slice(colon + 1);
  if (!/^[a-f0-9]*$/.test(hex)) return 'link digest is not lowercase hex';
  return `link digest has ${hex.length} hex characters, expected 64`;
}

/**
 * Reads a link file without following symlinks. Returns the digest and the
 * file's mtime (for a tag's current/link: when the tag was last pushed).
 */
export async function readLink(fs: StorageFs, path: string): Promise<LinkRead> {
  let read: PlainRead<string> | Error;
  try {
    // One call: the stats as lstat gives them and the text, read from the file those stats are of.
    read = await fs.readPlain(path, { limit: LINK_LIMIT, text: true });
  } catch (err) {
    read = err as Error;
  }
  return linkFrom(path, read);
}

/** readLink of many paths (a repository's tags or revisions): one batch of reads. In the order given. */
export async function readLinks(fs: StorageFs, paths: readonly string[]): Promise<LinkRead[]> {
  const reads = await readPlainMany(fs, paths, { limit: LINK_LIMIT, text: true });
  return reads.map((r, i) => linkFrom(paths[i] as string, r as PlainRead<string> | Error));
}

/** The largest link file read: the registry writes 71 bytes. */
const LINK_LIMIT = 256;

/** What the read of a link file says. */
function linkFrom(path: string, read: PlainRead<string> | Error): LinkRead {
  if (read instanceof Error) {
    if (errnoCode(read) === 'ENOENT') {
      return { ok: false, warning: { code: 'missing-link', path, message: 'link file is missing' } };
    }
    return { ok: false, warning: { code: 'unreadable', path, message: `cannot stat link: ${read.message}` } };
  }
  const st = read.stats;
  if (st.isSymbolicLink()) {
    return { ok: false, warning: { code: 'symlink', path, message: 'link file is a symbolic link; not followed' } };
  }
  if (!st.isFile()) {
    return { ok: false, warning: { code: 'unexpected', path, message: 'link is not a regular file' } };
  }
  if (st.size > LINK_LIMIT) {
    return { ok: false, warning: { code: 'bad-link', path, message: `link file is ${st.size} bytes, expected 71` } };
  }
  if (read.error !== undefined) {
    return { ok: false, warning: { code: 'unreadable', path, message: `cannot read link: ${read.error.message}` } };
  }
  const text = read.data ?? '';
  if (text.length > LINK_LIMIT) {
    // Grown since the stat: not a link the registry wrote.
    return { ok: false, warning: { code: 'bad-link', path, message: `link file is over 256 bytes, expected 71` } };
  }
  const problem = linkProblem(text);
  if (problem !== undefined) return { ok: false, warning: { code: 'bad-link', path, message: problem } };
  return { ok: true, digest: text as Digest, mtimeMs: st.mtimeMs };
}
