import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

// docs/container/entrypoint.sh, run by /bin/sh as the container would, with a stub in place of
// the bundle that prints the argv it was given. (That the real bundle runs behind it is in
// test/integration/package.test.ts.)

const ENTRYPOINT = fileURLToPath(new URL('../../docs/container/entrypoint.sh', import.meta.url));
const STUB = `process.stdout.write(JSON.stringify({ argv: process.argv.slice(2) }));\n`;

let dir: string;
let bundle: string;
let socket: string;
let server: Server;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regprune-entrypoint-'));
  bundle = join(dir, 'regprune.mjs');
  await writeFile(bundle, STUB);
  socket = join(dir, 'docker.sock');
  server = createServer();
  await new Promise<void>((done) => server.listen(socket, done));
});

afterAll(async () => {
  await new Promise<void>((done) => server.close(() => done()));
  await rm(dir, { recursive: true, force: true });
});

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** Whether the Docker socket exists (a listening unix socket) or is missing. */
  readonly socket: 'present' | 'missing';
  readonly env?: Readonly<Record<string, string>>;
  /** 'runs': the bundle ran with exactly `args`; 'refuses': exit 2 naming the socket, bundle not run. */
  readonly want: 'runs' | 'refuses';
}

const cases: readonly Case[] = [
  { name: 'plain dry run: passes the arguments through', args: ['prune', '--older-than', '30d', '--dry-run'], socket: 'missing', want: 'runs' },
  { name: 'no arguments: regprune itself answers (usage)', args: [], socket: 'missing', want: 'runs' },
  { name: '--gc docker:NAME without the socket', args: ['prune', '--older-than', '30d', '--yes', '--gc', 'docker:registry'], socket: 'missing', want: 'refuses' },
  { name: '--gc=docker:NAME without the socket', args: ['prune', '--yes', '--gc=docker:registry'], socket: 'missing', want: 'refuses' },
  { name: 'gc docker:NAME (the mode argument) without the socket', args: ['gc', '--restart', 'docker:registry'], socket: 'missing', want: 'refuses' },
  { name: '--gc docker:NAME with the socket mounted', args: ['prune', '--yes', '--gc', 'docker:registry'], socket: 'present', want: 'runs' },
  { name: '--gc docker:NAME with DOCKER_HOST instead of a socket', args: ['prune', '--yes', '--gc', 'docker:registry'], socket: 'missing', env: { DOCKER_HOST: 'tcp://10.0.0.1:2376' }, want: 'runs' },
  { name: 'a tag of a repository named docker is not a gc mode', args: ['prune', 'docker:v1', '--dry-run'], socket: 'missing', want: 'runs' },
  { name: '--gc local needs no socket', args: ['prune', '--yes', '--gc', 'local'], socket: 'missing', want: 'runs' },
  { name: 'an argument with spaces survives', args: ['prune', '--keep', 'a b', '--dry-run'], socket: 'missing', want: 'runs' },
];

describe('container entrypoint', () => {
  test.each(cases)('$name', async (c) => {
    const run = await execa('/bin/sh', [ENTRYPOINT, ...c.args], {
      reject: false,
      extendEnv: false,
      env: {
        PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
        REGPRUNE_BUNDLE: bundle,
        REGPRUNE_DOCKER_SOCKET: c.socket === 'present' ? socket : join(dir, 'no-such.sock'),
        ...c.env,
      },
    });
    if (c.want === 'runs') {
      expect(run.exitCode, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ argv: c.args });
    } else {
      expect(run.exitCode).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain('no-such.sock is not there');
      expect(run.stderr).toContain('-v /var/run/docker.sock:/var/run/docker.sock');
    }
  });

  test('sh runs a shell instead of regprune', async () => {
    const run = await execa('/bin/sh', [ENTRYPOINT, 'sh', '-c', 'echo shell:$0', 'x'], {
      reject: false,
      extendEnv: false,
      env: { PATH: '/usr/bin:/bin', REGPRUNE_BUNDLE: bundle },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe('shell:x');
  });
});
