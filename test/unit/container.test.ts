import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';

// The container image cannot be built here (no Docker engine): its Dockerfile is read and
// checked for what matters, and its entrypoint is run as the container would run it.

const DOCKERFILE = fileURLToPath(new URL('../../docs/container/Dockerfile', import.meta.url));
const IGNORE = fileURLToPath(new URL('../../docs/container/Dockerfile.dockerignore', import.meta.url));
const ENTRYPOINT = fileURLToPath(new URL('../../docs/container/entrypoint.sh', import.meta.url));

const text = readFileSync(DOCKERFILE, 'utf8');
/** Instructions, with continuation lines joined and comments dropped. */
const instructions = text
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const args = new Map(instructions.filter((l) => l.startsWith('ARG ')).map((l) => l.slice(4).split('=') as [string, string]));
const resolveImage = (ref: string) => ref.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? `<unset ${name}>`);
const stages = instructions.filter((l) => l.startsWith('FROM ')).map((l) => {
  const [, image = '', , name] = /^FROM\s+(\S+)(\s+AS\s+(\S+))?/i.exec(l) ?? [];
  return { image: resolveImage(image), name };
});

describe('docs/container/Dockerfile', () => {
  test('every base image is pinned to a full version, never a floating tag', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    for (const s of stages) {
      expect(s.image, s.image).toMatch(/^[a-z0-9./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/);
      expect(s.image).not.toMatch(/:latest|:\d+-|:\d+$/);
    }
  });

  test('multi-stage, from source: the build stage installs with npm ci and builds the bundle; the runtime copies only its output', () => {
    expect(stages.map((s) => s.name)).toContain('build');
    const buildAt = instructions.findIndex((l) => /^FROM \S+ AS build$/i.test(l));
    const runtimeAt = instructions.findIndex((l, i) => i > buildAt && l.startsWith('FROM '));
    const buildStage = instructions.slice(buildAt, runtimeAt);
    expect(buildStage).toContain('RUN npm ci --no-audit --no-fund');
    expect(buildStage.some((l) => /^COPY src \.\/src$/.test(l))).toBe(true);
    expect(buildStage.some((l) => /^RUN .*npm run package$/.test(l))).toBe(true);
    const runtime = instructions.slice(runtimeAt);
    expect(runtime).toContain('COPY --from=build /src/dist/regprune.mjs /opt/regprune/regprune.mjs');
    // Nothing prebuilt from the checkout: the image does not depend on `npm run package` having run first.
    expect(runtime.filter((l) => l.startsWith('COPY ') && !l.startsWith('COPY --from=')).every((l) => !l.includes('dist/'))).toBe(true);
  });

  test('the build context sends everything the COPY lines read', () => {
    const allowed = readFileSync(IGNORE, 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = instructions.filter((l) => l.startsWith('COPY ') && !l.startsWith('COPY --from=')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const src of sources) expect(allowed, src).toContain(src.replace(/\/$/, ''));
  });

  test('OCI labels', () => {
    const labels = instructions.filter((l) => l.startsWith('LABEL ')).join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'source']) expect(labels).toContain(`org.opencontainers.image.${key}=`);
  });

  test('PID 1 is tini (exec form), which passes signals on to regprune', () => {
    const entry = instructions.find((l) => l.startsWith('ENTRYPOINT '));
    expect(entry).toBe('ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/regprune-entrypoint"]');
    expect(instructions.some((l) => /apt-get install -y --no-install-recommends tini/.test(l))).toBe(true);
  });
});

describe('docs/container/entrypoint.sh passes SIGTERM to regprune', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('the shell execs node: SIGTERM to the entrypoint process reaches the program', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regprune-container-'));
    dirs.push(dir);
    const stub = join(dir, 'stub.mjs');
    await writeFile(
      stub,
      "process.on('SIGTERM', () => { process.stdout.write('got SIGTERM\\n'); process.exit(143); });\nprocess.stdout.write('ready\\n');\nsetInterval(() => {}, 1000);\n",
    );
    const child = execa('/bin/sh', [ENTRYPOINT, 'prune', '--dry-run', '--older-than', '30d'], { env: { REGPRUNE_BUNDLE: stub }, reject: false });
    await new Promise<void>((resolve) => child.stdout?.on('data', (c: Buffer) => (String(c).includes('ready') ? resolve() : undefined)));
    process.kill(child.pid as number, 'SIGTERM');
    const r = await child;
    expect(r.stdout).toContain('got SIGTERM');
    expect(r.exitCode).toBe(143);
  });
});
