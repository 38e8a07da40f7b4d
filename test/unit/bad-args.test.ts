import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliDeps } from '../../src/cli/deps.js';
import { runCli } from '../../src/cli/program.js';
import type { Argv } from '../../src/gc/process.js';
import { MemRegistry, daysAgo } from '../helpers/memtree.js';

// Issue 6, bad arguments: a usage error (exit 2) whose message names the
// argument, before anything on disk is touched: the whole tree, mtimes and
// modes included, is the same afterwards, no lock or trash is made, and no
// program is started or looked up. Cases already in cli.test.ts (30x, -5d,
// --keep-last -1/x, ../../etc:x, I1:T12, --tag '/[/', a missing --root) are
// not repeated here.

const NOW = new Date('2026-11-23T12:00:00Z');
const ROOT = '/srv/registry';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Programs the CLI ran or looked up on PATH. */
  programs: Array<Argv | string>;
  questions: string[];
}

async function cli(reg: MemRegistry, argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const programs: Array<Argv | string> = [];
  const questions: string[] = [];
  const deps: CliDeps = {
    fs: reg.fs,
    now: () => NOW,
    env: {},
    cwd: '/srv',
    stdout: { write: (s) => void out.push(s), isTTY: false },
    stderr: { write: (s) => void err.push(s), isTTY: false },
    stdinIsTTY: false,
    confirm: async (q) => {
      questions.push(q);
      return true;
    },
    pid: 4242,
    version: '0.1.0-test',
    run: {
      run: async (a) => {
        programs.push(a);
        return { started: false, notFound: true, message: 'no programs in unit tests' };
      },
      which: async (name) => {
        programs.push(`which ${name}`);
        return undefined;
      },
      isAlive: () => false,
      hostname: 'unit-test',
    },
  };
  const code = await runCli(argv, deps);
  return { code, stdout: out.join(''), stderr: err.join(''), programs, questions };
}

/** Every entry under `/` (not only the root: a file next to it counts too), with type, bytes, mode and mtime. */
function snapshot(reg: MemRegistry): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (dir: string) => {
    for (const name of (reg.vol.readdirSync(dir) as string[]).sort()) {
      const path = posix.join(dir, name);
      const st = reg.vol.lstatSync(path);
      const meta = `mode=${st.mode.toString(8)} mtime=${st.mtimeMs}`;
      if (st.isSymbolicLink()) out.set(path, `symlink -> ${String(reg.vol.readlinkSync(path))} ${meta}`);
      else if (st.isDirectory()) {
        out.set(path, `dir ${meta}`);
        visit(path);
      } else out.set(path, `file ${Buffer.from(reg.vol.readFileSync(path) as Buffer).toString('base64')} ${meta}`);
    }
  };
  visit('/');
  return out;
}

/** i1 with an old tag (selected by every selector below) and a new one; a plain file at /srv/file. */
function tree(): MemRegistry {
  const reg = new MemRegistry(ROOT);
  const a = reg.putImage('i1', { seed: 'a', layers: ['base', 'a'] });
  const b = reg.putImage('i1', { seed: 'b', layers: ['base', 'b'] });
  reg.tag('i1', 'T12', a.manifest.digest, daysAgo(NOW, 60));
  reg.tag('i1', 'T13', b.manifest.digest, daysAgo(NOW, 1));
  reg.write('/srv/file', 'not a directory');
  return reg;
}

const HINT_GC = 'hint: modes: none, local, docker:CONTAINER, kubectl:[NAMESPACE/]POD, kubectl:[NAMESPACE/]deployment/NAME\n';

/** [name, argv after `prune --yes`, exact stderr]. Each would remove i1:T12 if it were accepted. */
const cases: Array<[name: string, args: string[], stderr: string]> = [
  ['ref with an empty tag: i1:', ['i1:'], `regprune: tag reference "i1:": missing tag after ':'\n`],
  ['ref with an empty repository: :t', [':t'], `regprune: tag reference ":t": missing repository before ':'\n`],
  [
    'ref with an empty repository, next to a valid ref',
    ['i1:T12', ':T12'],
    `regprune: tag reference ":T12": missing repository before ':'\n`,
  ],
  [
    '--before yesterday',
    ['--before', 'yesterday'],
    'regprune: --before "yesterday": not an ISO 8601 date, e.g. 2026-09-01 or 2026-09-01T12:00:00Z\n',
  ],
  [
    "--repo 'Team/*' (uppercase)",
    ['--older-than', '30d', '--repo', 'Team/*'],
    'regprune: --repo "Team/*": repository names are lowercase; unexpected character in pattern\n',
  ],
  [
    '--root /',
    ['--root', '/', 'i1:T12'],
    "regprune: / is not a registry storage root (no docker/registry/v2/repositories)\nhint: pass the storage driver rootdirectory with --root: /var/lib/registry in the registry:2/3 images, /var/lib/docker-registry for Debian's docker-registry\n",
  ],
  [
    '--root a file',
    ['--root', '/srv/file', 'i1:T12'],
    'regprune: /srv/file is not a registry storage root (no docker/registry/v2/repositories)\nhint: /srv/file is not a directory; pass the directory itself\n',
  ],
  [
    '--root a file, relative to the cwd',
    ['--root', 'file', 'i1:T12'],
    'regprune: /srv/file is not a registry storage root (no docker/registry/v2/repositories)\nhint: /srv/file is not a directory; pass the directory itself\n',
  ],
  ['--root empty', ['--root', '', 'i1:T12'], 'regprune: --root: empty path\n'],
  ['--gc docker: (empty name)', ['i1:T12', '--gc', 'docker:'], `regprune: --gc "docker:": empty container name\n${HINT_GC}`],
  [
    "--gc 'docker:a;rm -rf /' (hostile name)",
    ['i1:T12', '--gc', 'docker:a;rm -rf /'],
    `regprune: --gc "docker:a;rm -rf /": not a docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)\n${HINT_GC}`,
  ],
  ['--gc kubectl: (empty pod)', ['i1:T12', '--gc', 'kubectl:'], `regprune: --gc "kubectl:": empty pod name\n${HINT_GC}`],
  [
    "--gc 'kubectl:$(id)'",
    ['i1:T12', '--gc', 'kubectl:$(id)'],
    `regprune: --gc "kubectl:$(id)": not a Kubernetes pod name (DNS-1123 subdomain: a-z 0-9 - ., at most 253)\n${HINT_GC}`,
  ],
];

describe('prune: bad arguments exit 2, name the argument, touch nothing', () => {
  it.each(cases)('%s', async (_name, args, stderr) => {
    const reg = tree();
    const before = snapshot(reg);
    // --root ROOT first: a later --root in args wins (commander keeps the last value).
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', ...args]);
    expect(r.stderr).toBe(stderr);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.questions).toEqual([]);
    expect(r.programs).toEqual([]);
    expect(snapshot(reg)).toEqual(before);
    // No lock, trash or journal was made (and then removed): .regprune never existed.
    expect(reg.exists(reg.lay.stateDir)).toBe(false);
  });

  it('the same tree with valid arguments is changed (the snapshot sees a removal)', async () => {
    const reg = tree();
    const before = snapshot(reg);
    const r = await cli(reg, ['prune', '--root', ROOT, '--yes', 'i1:T12']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const after = snapshot(reg);
    expect(after).not.toEqual(before);
    expect([...before.keys()].filter((p) => !after.has(p)).some((p) => p.endsWith('/_manifests/tags/T12'))).toBe(true);
  });

  it('the gc command refuses the same hostile modes, as its argument or as --gc', async () => {
    for (const argv of [
      ['gc', 'docker:a;rm -rf /', '--root', ROOT],
      ['gc', '--gc', 'docker:', '--root', ROOT],
      ['gc', 'kubectl:', '--root', ROOT],
    ]) {
      const reg = tree();
      const before = snapshot(reg);
      const r = await cli(reg, argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(/^regprune: --gc "(docker:a;rm -rf \/|docker:|kubectl:)": /);
      expect(r.programs).toEqual([]);
      expect(snapshot(reg)).toEqual(before);
    }
  });
});
