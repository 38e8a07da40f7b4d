import { UsageError } from './errors.js';

/** A tag pattern: a glob (`3.3.0-alpha.*`) or a regular expression written `/.../flags`. */
export interface TagPattern {
  readonly text: string;
  readonly kind: 'glob' | 'regex';
  test(value: string): boolean;
}

function escapeRegex(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch;
}

/**
 * Translates a glob to a regular expression source: `?` one character,
 * `[abc]` / `[!abc]` a class, `{a,b}` alternatives. For tags (no `/`), `*`
 * and `**` are any run. For repository names (`paths`), `*` and `?` stay
 * within one path component, `**` crosses them, and `**` + `/` matches zero
 * or more whole components.
 */
function globSource(glob: string, what: string, paths: boolean): string {
  const one = paths ? '[^/]' : '.';
  let out = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === '*' && glob[i + 1] === '*') {
      while (glob[i + 1] === '*') i++;
      if (paths && glob[i + 1] === '/') {
        i++;
        out += '(?:[^/]+/)*';
      } else out += '.*';
    } else if (ch === '*') out += `${one}*`;
    else if (ch === '?') out += one;
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) throw new UsageError(`${what} ${JSON.stringify(glob)}: unclosed '['`);
      let body = glob.slice(i + 1, end);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (ch === '{') {
      braces++;
      out += '(?:';
    } else if (ch === '}' && braces > 0) {
      braces--;
      out += ')';
    } else if (ch === ',' && braces > 0) out += '|';
    else out += escapeRegex(ch);
  }
  if (braces > 0) throw new UsageError(`${what} ${JSON.stringify(glob)}: unclosed '{'`);
  return out;
}

export function parseTagPattern(text: string, what = '--tag'): TagPattern {
  if (text.length === 0) throw new UsageError(`${what}: empty pattern`);
  const re = /^\/(.+)\/([a-z]*)$/s.exec(text);
  if (re !== null && re[1] !== undefined) {
    let regex: RegExp;
    try {
      regex = new RegExp(re[1], (re[2] ?? '').replace(/[gy]/g, ''));
    } catch (err) {
      throw new UsageError(`${what} ${JSON.stringify(text)}: invalid regular expression: ${(err as Error).message}`);
    }
    return { text, kind: 'regex', test: (v) => regex.test(v) };
  }
  const regex = new RegExp(`^${globSource(text, what, false)}$`);
  return { text, kind: 'glob', test: (v) => regex.test(v) };
}

/** A glob over repository names: `*` within one path component, `**` across components. */
export interface RepoGlob {
  readonly text: string;
  test(repository: string): boolean;
}

export function parseRepoGlob(text: string, what = '--repo'): RepoGlob {
  if (text.length === 0) throw new UsageError(`${what}: empty pattern`);
  if (/[^a-z0-9._\-/*?:{},[\]!]/.test(text)) {
    throw new UsageError(`${what} ${JSON.stringify(text)}: repository names are lowercase; unexpected character in pattern`);
  }
  const regex = new RegExp(`^${globSource(text, what, true)}$`);
  return { text, test: (v) => regex.test(v) };
}
