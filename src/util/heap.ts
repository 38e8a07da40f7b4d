import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let small = false;
let fullGc: (() => void) | undefined;

function apply(): void {
  // After a full collection V8 lets the heap grow up to 4x what survived before the next one:
  // at 100k tags about 80 MB survive the plan, and the apply's short-lived garbage (a Stats
  // object per lstat, a string per path) took the heap to 230 MB before it was collected
  // (--trace-gc). Growing by a quarter at most keeps the peak near what is live, for a few more
  // (incremental, tens of ms) collections. Read by V8 at each collection.
  setFlagsFromString('--heap-growing-percent=25');
  // The young generation starts at two 1 MB semi-spaces and doubles whenever many of its objects
  // survive, as the plan's do, up to two of 16 MB: 30 MB of RSS (10k tags: 137 -> 106 MB peak)
  // for a few per cent more CPU in more, smaller scavenges. Its maximum is fixed when the heap
  // is set up (--max-semi-space-size only works on node's command line, which the launchers
  // do not control); a growth factor of 1, read at each growth, keeps the initial size.
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * Peak memory: keeps V8's heap near what is live. For the program's main (src/cli/main.ts)
 * only: the flags are the whole process's.
 */
export function keepHeapSmall(): void {
  small = true;
  apply();
}

/**
 * V8 raises --semi-space-growth-factor back to its minimum of 2 when it sets up a new isolate's
 * heap (a worker thread's, on that thread, once it runs): call when a worker is online.
 */
export function reassertHeapFlags(): void {
  if (small) apply();
}

/**
 * A full collection now, where the program knows that most of the heap just became garbage (the
 * plan's working set, once the plan is made): V8 would collect it only once the heap has grown
 * by another quarter, and the memory outside the heap those objects hold (the manifest cache's
 * digest table, 24 MB at 100k tags) is freed only then. At 100k tags the apply's peak went from
 * 230 to 178 MB (the plan's, 190 MB, is now the run's). Only after keepHeapSmall() (the
 * program's main); a no-op for library users.
 */
export function settleHeap(): void {
  if (!small) return;
  if (fullGc === undefined) {
    // What node --expose-gc gives: a context made after the flag is set has gc().
    setFlagsFromString('--expose-gc');
    fullGc = runInNewContext('gc') as () => void;
  }
  fullGc();
}
