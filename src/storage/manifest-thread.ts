/**
 * The manifest thread (started by src/storage/manifest-reader.ts): given blob
 * dirs, it reads each `data` as the plan does on the main thread (lstat of the
 * dir, readPlain of the data: no symbolic link followed) and parses it with
 * the same code (manifestOfBlob). What goes back is a Failed entry as is, or
 * the references in the compact form ThreadManifest.
 */
import * as nodeFs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { manifestOfBlob, type ThreadManifest } from '../graph/load.js';
import { NO_FOLLOW_READ, asError, readPlainSync, type FileStats, type PlainRead } from './fs.js';

function readOne(blobDir: string): unknown {
  let dir: FileStats | Error;
  try {
    dir = nodeFs.lstatSync(blobDir);
  } catch (err) {
    dir = asError(err);
  }
  let read: PlainRead<Uint8Array> | Error | undefined;
  if (!(dir instanceof Error) && !dir.isSymbolicLink()) {
    try {
      read = readPlainSync(nodeFs, `${blobDir}/data`, Infinity, false, NO_FOLLOW_READ) as PlainRead<Uint8Array>;
    } catch (err) {
      read = asError(err);
    }
  }
  const r = manifestOfBlob(blobDir, dir, read);
  if (!r.ok) return r;
  const { kind, mediaType, blobs, children, subject, foreign } = r.refs;
  const out: ThreadManifest = [kind, mediaType, r.size, blobs.map((b) => b.slice(7)).join(''), [...children], subject ?? null, foreign === undefined ? null : [...foreign]];
  return out;
}

parentPort?.on('message', (blobDirs: string[]) => {
  const out: unknown[] = [];
  for (const dir of blobDirs) {
    try {
      out.push(readOne(dir));
    } catch (err) {
      const e = asError(err);
      out.push({ ok: false, missing: false, code: 'unreadable', path: dir, problem: `cannot read manifest blob: ${e.message}` });
    }
  }
  parentPort?.postMessage(out);
});
