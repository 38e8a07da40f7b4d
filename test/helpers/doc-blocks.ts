import { readFileSync } from 'node:fs';

/**
 * Shell code blocks of the documentation, for test/integration/docs.test.ts.
 *
 * Every fenced block whose info string is `sh`, `bash` or `shell` is a
 * block of commands. It runs in a test against the sample registry unless
 * the line right before its opening fence (indentation allowed) says why not:
 *
 *     <!-- doctest: skip REASON -->
 *
 * REASON is required (e.g. `needs the registry host over ssh`). A block may
 * also say which exit status its last command has: `<!-- doctest: exit 2 -->`.
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
      if (before.startsWith('<!--') && before.includes('doctest')) {
        const m = /^<!--\s*doctest:\s*(?:skip\s+(\S.*?)|exit\s+(\d+))\s*-->$/.exec(before);
        if (m === null) badMarker = before;
        else if (m[1] !== undefined) skip = m[1];
        else exit = Number(m[2]);
      }
      blocks.push({ where: `${label}:${i + 1}`, lang, code: `${body.join('\n')}\n`, skip, exit, badMarker });
    }
    i = end;
  }
  return blocks;
}
