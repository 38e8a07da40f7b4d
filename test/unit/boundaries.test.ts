import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The architecture, as tests: pure layers never touch the filesystem, processes or the
// command line; only storage/ knows the on-disk layout; only cli/ reads the clock or the
// environment (everything else gets them passed in).

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(REPO, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|cts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

interface Facts {
  /** Module specifiers of static imports/exports, dynamic import() and require(). */
  readonly imports: string[];
  /** The code without comments (string literals kept). */
  readonly code: string;
  /** `new Date()` with no arguments, or `Date.now()`: reading the clock. */
  readonly clockReads: number;
  /** `process.env` in any form. */
  readonly envReads: number;
  /** Calls of a mutating fs function (`x.rename(...)`, `rmSync(...)`, ...) by name. */
  readonly mutations: string[];
  /** Uses of the identifier `RAW` (the key to the raw mutating calls). */
  readonly rawUses: number;
}

// Every fs call that changes a disk. Outside src/storage/door.ts (and fs.ts, which builds the
// raw calls), none of them may be called: every change goes through the door's checks.
const MUTATING = new Set(
  ['rename', 'rm', 'rmdir', 'unlink', 'writeFile', 'appendFile', 'mkdir', 'mkdtemp', 'symlink', 'link', 'utimes', 'lutimes', 'futimes', 'chown', 'lchown', 'fchown', 'chmod', 'lchmod', 'truncate', 'ftruncate', 'copyFile', 'cp']
    .flatMap((n) => [n, `${n}Sync`])
    // `write` and `open` are everyday method names (stdout.write, log.open): only their fs forms.
    .concat(['createWriteStream', 'openSync', 'writeSync', 'writevSync', 'fsyncSync']),
);

function facts(fileName: string, text: string): Facts {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const imports: string[] = [];
  let clockReads = 0;
  let envReads = 0;
  let rawUses = 0;
  const mutations: string[] = [];
  const isId = (n: ts.Node, name: string) => ts.isIdentifier(n) && n.text === name;
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier !== undefined && ts.isStringLiteral(n.moduleSpecifier)) {
      imports.push(n.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
      imports.push(n.moduleReference.expression.text);
    } else if (ts.isCallExpression(n)) {
      const [arg] = n.arguments;
      if ((n.expression.kind === ts.SyntaxKind.ImportKeyword || isId(n.expression, 'require')) && arg !== undefined && ts.isStringLiteralLike(arg)) {
        imports.push(arg.text);
      }
      if (ts.isPropertyAccessExpression(n.expression) && isId(n.expression.expression, 'Date') && n.expression.name.text === 'now') clockReads++;
      const callee = ts.isPropertyAccessExpression(n.expression) ? n.expression.name.text : ts.isIdentifier(n.expression) ? n.expression.text : undefined;
      if (callee !== undefined && MUTATING.has(callee)) mutations.push(callee);
    } else if (ts.isNewExpression(n) && isId(n.expression, 'Date') && (n.arguments === undefined || n.arguments.length === 0)) {
      clockReads++;
    } else if (ts.isPropertyAccessExpression(n) && isId(n.expression, 'process') && n.name.text === 'env') {
      envReads++;
    } else if (ts.isElementAccessExpression(n) && isId(n.expression, 'process') && ts.isStringLiteralLike(n.argumentExpression) && n.argumentExpression.text === 'env') {
      envReads++;
    }
    if (ts.isIdentifier(n) && n.text === 'RAW') rawUses++;
    ts.forEachChild(n, visit);
  };
  visit(sf);
  const code = ts.createPrinter({ removeComments: true }).printFile(sf);
  return { imports, code, clockReads, envReads, mutations, rawUses };
}

const FORBIDDEN_IMPORT = /^(?:node:)?fs(?:\/.*)?$|^execa(?:\/.*)?$|^commander(?:\/.*)?$/;
const LAYOUT_NAMES = ['_manifests', '_layers', '_uploads'];

const files = sourceFiles(SRC).map((path) => ({ path, rel: relative(REPO, path), facts: facts(path, readFileSync(path, 'utf8')) }));
const inDir = (rel: string, dir: string) => rel.startsWith(`src/${dir}/`);

describe('the checks themselves', () => {
  const cases: Array<[name: string, source: string, expected: Partial<Facts> & { layout?: boolean }]> = [
    ['static import of node:fs', `import * as fs from 'node:fs';`, { imports: ['node:fs'] }],
    ['type-only import still counts', `import type { Stats } from 'fs';`, { imports: ['fs'] }],
    ['fs/promises re-export', `export { readFile } from 'node:fs/promises';`, { imports: ['node:fs/promises'] }],
    ['dynamic import', `const m = await import('execa');`, { imports: ['execa'] }],
    ['require', `const c = require('commander');`, { imports: ['commander'] }],
    ['new Date() reads the clock', 'const t = new Date();', { clockReads: 1 }],
    ['new Date with no parentheses', 'const t = new Date;', { clockReads: 1 }],
    ['Date.now()', 'const t = Date.now();', { clockReads: 1 }],
    ['new Date(x) does not', 'const t = new Date(ms); const u = new Date("2026-01-01");', { clockReads: 0 }],
    ['process.env', 'const r = process.env.REGPRUNE_ROOT;', { envReads: 1 }],
    ["process['env']", "const r = process['env'];", { envReads: 1 }],
    ['a layout name in a string', "const p = join(repo, '_manifests');", { layout: true }],
    ['a layout name in a template', 'const p = `${repo}/_layers/sha256`;', { layout: true }],
    ['fs.rename(...) is a mutation', 'await fs.rename(a, b);', { mutations: ['rename'] }],
    ['rmSync(...) is a mutation', 'rmSync(p, { recursive: true });', { mutations: ['rmSync'] }],
    ['x[RAW].unlink(...) is both', 'fs[RAW].unlink(p);', { mutations: ['unlink'], rawUses: 1 }],
    ['door.delete(...) is not', 'await door.delete(p); m.delete(k);', { mutations: [], rawUses: 0 }],
    ['a layout name only in comments', '// the _manifests dir\n/** under `_uploads` */\nconst x = 1;', { layout: false }],
  ];
  it.each(cases)('%s', (_name, source, expected) => {
    const f = facts('case.ts', source);
    const { layout, ...rest } = expected;
    expect(f).toMatchObject(rest);
    if (layout !== undefined) expect(LAYOUT_NAMES.some((n) => f.code.includes(n))).toBe(layout);
  });

  it('found the sources', () => {
    expect(files.map((f) => f.rel)).toEqual(expect.arrayContaining(['src/storage/paths.ts', 'src/policy/select.ts', 'src/plan/build.ts', 'src/graph/reach.ts', 'src/cli/program.ts']));
  });
});

describe('boundaries', () => {
  it('policy/, plan/ and graph/ never import fs, execa or commander', () => {
    const offenders = files
      .filter((f) => ['policy', 'plan', 'graph'].some((d) => inDir(f.rel, d)))
      .flatMap((f) => f.facts.imports.filter((i) => FORBIDDEN_IMPORT.test(i)).map((i) => `${f.rel} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  // Comments may name the registry's directories (why-comments about its quirks need to);
  // code may not: the layout lives in src/storage/paths.ts. (A name that merely contains one,
  // like the metric regprune_manifests_unlinked, is not the directory.)
  it('no code outside storage/ spells _manifests, _layers or _uploads', () => {
    const offenders = files
      .filter((f) => !inDir(f.rel, 'storage'))
      .flatMap((f) => LAYOUT_NAMES.filter((n) => new RegExp(`(?<![A-Za-z0-9])${n}`).test(f.facts.code)).map((n) => `${f.rel} spells ${n}`));
    expect(offenders).toEqual([]);
  });

  it('nothing outside the door (src/storage/door.ts, and fs.ts that builds it) calls a mutating fs function or takes RAW', () => {
    const door = ['src/storage/door.ts', 'src/storage/fs.ts'];
    const offenders = files
      .filter((f) => !door.includes(f.rel))
      .flatMap((f) => [...f.facts.mutations.map((m) => `${f.rel} calls ${m}()`), ...(f.facts.rawUses > 0 ? [`${f.rel} uses RAW`] : [])]);
    expect(offenders).toEqual([]);
  });

  it('only cli/ reads the clock or process.env', () => {
    const offenders = files
      .filter((f) => !inDir(f.rel, 'cli'))
      .flatMap((f) => [
        ...(f.facts.clockReads > 0 ? [`${f.rel} reads the clock (new Date() / Date.now())`] : []),
        ...(f.facts.envReads > 0 ? [`${f.rel} reads process.env`] : []),
      ]);
    expect(offenders).toEqual([]);
  });
});
