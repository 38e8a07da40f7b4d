import { readFileSync } from 'node:fs';

/**
 * Shell code blocks of the documentation, for test/integration/docs.test.ts.
 *
 * Every fenced block whose info string is `sh`, `bash` or `shell` is a
 * block of commands, and the line right before its opening fence
 * (indentation allowed) must say what the test does with it:
 *
 *     <!-- doctest: run -->           runs against the sample registry, exit 0
 *     <!-- doctest: exit 2 -->        runs; the block ends with that status
 *     <!-- doctest: skip REASON -->   does not run, and says why
 *
 * REASON is required (e.g. `needs the registry host over ssh`). A block
 * without a marker fails the test: the tests run as root, so nothing runs
 * that its author did not mean to run.
 */
export interface DocBlock {
  /** `docs/install.md:58`: file and line of the opening fence. */
  readonly where: string;
  readonly lang: string;
  readonly code: string;
  readonly skip: string | undefined;
  readonly exit: number;
  /** A marker that could not be read (a typo must not silently skip or run a block). */
  readonly badMarker: string | undefined;
}

const SHELL = new Set(['sh', 'bash', 'shell']);

export function docBlocks(path: string, label: string): DocBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i] as string);
    if (open === null) continue;
    const [, indent = '', fence = '', lang = ''] = open;
    let end = i + 1;
    while (end < lines.length && !(lines[end] as string).trimStart().startsWith(fence)) end++;
    const body = lines.slice(i + 1, end).map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart()));
    if (SHELL.has(lang)) {
      const before = (lines[i - 1] ?? '').trim();
      let skip: string | undefined;
      let exit = 0;
      let badMarker: string | undefined;
      const m = /^<!--\s*doctest:\s*(?:(run)|skip\s+(\S.*?)|exit\s+(\d+))\s*-->$/.exec(before);
      if (m === null) badMarker = before === '' ? '(no doctest marker)' : before;
      else if (m[2] !== undefined) skip = m[2];
      else if (m[3] !== undefined) exit = Number(m[3]);
      blocks.push({ where: `${label}:${i + 1}`, lang, code: `${body.join('\n')}\n`, skip, exit, badMarker });
    }
    i = end;
  }
  return blocks;
}
