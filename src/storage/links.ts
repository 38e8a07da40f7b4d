import type { Digest } from '../model/names.js';
import { isDigest } from '../model/names.js';
import { errnoCode } from '../model/errors.js';
import type { StorageFs } from './fs.js';
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
  let mtimeMs: number;
  try {
    const st = await fs.lstat(path);
    if (st.isSymbolicLink()) {
      return { ok: false, warning: { code: 'symlink', path, message: 'link file is a symbolic link; not followed' } };
    }
    if (!st.isFile()) {
      return { ok: false, warning: { code: 'unexpected', path, message: 'link is not a regular file' } };
    }
    if (st.size > 256) {
      return { ok: false, warning: { code: 'bad-link', path, message: `link file is ${st.size} bytes, expected 71` } };
    }
    mtimeMs = st.mtimeMs;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      return { ok: false, warning: { code: 'missing-link', path, message: 'link file is missing' } };
    }
    return { ok: false, warning: { code: 'unreadable', path, message: `cannot stat link: ${(err as Error).message}` } };
  }
  let text: string;
  try {
    text = await fs.readText(path);
    if (text.length > 256) {
      // Grown since the lstat: not a link the registry wrote.
      return { ok: false, warning: { code: 'bad-link', path, message: `link file is over 256 bytes, expected 71` } };
    }
  } catch (err) {
    return { ok: false, warning: { code: 'unreadable', path, message: `cannot read link: ${(err as Error).message}` } };
  }
  const problem = linkProblem(text);
  if (problem !== undefined) return { ok: false, warning: { code: 'bad-link', path, message: problem } };
  return { ok: true, digest: text as Digest, mtimeMs };
}
