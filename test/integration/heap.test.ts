import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test, onTestFinished } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

// The CLI keeps V8's young generation at its initial two 1 MB semi-spaces (src/util/heap.ts):
// 30 MB of peak RSS. V8 resets the flag behind it when the remover thread's heap is set up, so
// it is set again then. In a child process: the flags are the whole process's.

const SCRIPT = (dist: string, dir: string) => `
import * as nodeFs from 'node:fs';
import v8 from 'node:v8';
import { keepHeapSmall } from ${JSON.stringify(pathToFileURL(join(dist, 'src/util/heap.js')).href)};
import { RAW, storageFs } from ${JSON.stringify(pathToFileURL(join(dist, 'src/storage/fs.js')).href)};
keepHeapSmall();
// Starts the remover thread.
await storageFs(nodeFs)[RAW].rm(${JSON.stringify(dir)}, { recursive: true, force: true });
if (nodeFs.existsSync(${JSON.stringify(dir)})) throw new Error('not removed');
// Objects that survive a while, as a plan's do: what makes V8 grow the young generation.
let keep = [];
for (let i = 0; i < 3e6; i++) {
  keep.push({ i, s: 'x' + i });
  if (keep.length > 200000) keep = [];
  if (i % 100000 === 0) await new Promise((r) => setImmediate(r));
}
const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
console.log(JSON.stringify({ newSpaceMb: space.space_size / 1048576 }));
`;

const SETTLE = (dist: string) => `
import { keepHeapSmall, settleHeap } from ${JSON.stringify(pathToFileURL(join(dist, 'src/util/heap.js')).href)};
import { readFileSync } from 'node:fs';
const rssMb = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
keepHeapSmall();
// A working set that just became garbage, most of it outside the heap (as the plan's digest table).
let set = [];
for (let i = 0; i < 40; i++) set.push(Buffer.alloc(1 << 20, i));
set = undefined;
const before = rssMb();
settleHeap();
// Backing stores are freed by V8's sweeper thread, just after the collection.
await new Promise((resolve) => setTimeout(resolve, 500));
console.log(JSON.stringify({ before, after: rssMb() }));
`;

describe('heap flags', () => {
  test('settleHeap frees a working set that just became garbage, memory outside the heap included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-heap-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const script = join(dir, 'settle.mjs');
    await writeFile(script, SETTLE(join(REPO_ROOT, 'dist')));
    const r = await execa(process.execPath, [script], { reject: false, timeout: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    expect(before - after).toBeGreaterThan(30);
  });

  test('the young generation stays small after the remover thread started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-heap-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const victim = join(dir, 'victim');
    await mkdir(join(victim, 'a', 'b'), { recursive: true });
    await writeFile(join(victim, 'a', 'b', 'link'), 'x');
    const script = join(dir, 'heap.mjs');
    await writeFile(script, SCRIPT(join(REPO_ROOT, 'dist'), victim));
    const r = await execa(process.execPath, [script], { reject: false, timeout: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const { newSpaceMb } = JSON.parse(r.stdout) as { newSpaceMb: number };
    // Two semi-spaces of 1 MB (V8's default maximum is two of 16 MB); one growth step at most before the thread was online.
    expect(newSpaceMb).toBeLessThanOrEqual(4);
  });
});
