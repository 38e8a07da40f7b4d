import { describe, expect, it } from 'vitest';
import { linkProblem, readLink } from '../../src/storage/links.js';
import { MemRegistry } from '../helpers/memtree.js';

const HEX = '0123456789abcdef'.repeat(4);
const DIGEST = `sha256:${HEX}`;
const NEWLINE = 'link ends with a newline (garbage-collect aborts on it: invalid checksum digest length)';

describe('linkProblem', () => {
  const cases: Array<[name: string, text: string, problem: string | undefined]> = [
    ['exact link (71 bytes, no newline)', DIGEST, undefined],
    ['trailing newline', `${DIGEST}\n`, NEWLINE],
    ['trailing CRLF', `${DIGEST}\r\n`, NEWLINE],
    ['two trailing newlines', `${DIGEST}\n\n`, NEWLINE],
    ['too short', 'sha256:abc', 'link digest has 3 hex characters, expected 64'],
    ['one hex character too many', `${DIGEST}0`, 'link digest has 65 hex characters, expected 64'],
    ['only the algorithm', 'sha256:', 'link digest has 0 hex characters, expected 64'],
    ['unknown algorithm', `sha512:${HEX}${HEX}`, 'unknown digest algorithm "sha512"'],
    ['empty', '', 'empty link file'],
    ['uppercase hex', `sha256:${HEX.toUpperCase()}`, 'link digest is not lowercase hex'],
    ['trailing space', `${DIGEST} `, 'link digest is not lowercase hex'],
    ['no algorithm prefix', HEX, 'link has no algorithm prefix'],
    ['leading space', ` ${DIGEST}`, 'unknown digest algorithm " sha256"'],
  ];
  it.each(cases)('%s', (_name, text, problem) => {
    expect(linkProblem(text)).toBe(problem);
  });
});

describe('readLink on memfs', () => {
  const PATH = '/srv/registry/docker/registry/v2/repositories/app/_manifests/tags/v1/current/link';
  const MTIME = new Date('2026-09-01T10:20:30.000Z');

  it('exact link: the digest and the file mtime', async () => {
    const reg = new MemRegistry();
    reg.write(PATH, DIGEST);
    reg.vol.utimesSync(PATH, MTIME, MTIME);
    expect(await readLink(reg.fs, PATH)).toEqual({ ok: true, digest: DIGEST, mtimeMs: MTIME.getTime() });
  });

  const bad: Array<[name: string, setup: (reg: MemRegistry) => void, code: string, message: string]> = [
    ['trailing newline', (r) => r.write(PATH, `${DIGEST}\n`), 'bad-link', NEWLINE],
    ['wrong length', (r) => r.write(PATH, DIGEST.slice(0, 70)), 'bad-link', 'link digest has 63 hex characters, expected 64'],
    ['unknown algorithm', (r) => r.write(PATH, `sha512:${HEX}${HEX}`), 'bad-link', 'unknown digest algorithm "sha512"'],
    ['empty', (r) => r.write(PATH, ''), 'bad-link', 'empty link file'],
    ['uppercase hex', (r) => r.write(PATH, `sha256:${HEX.toUpperCase()}`), 'bad-link', 'link digest is not lowercase hex'],
    ['larger than 256 bytes', (r) => r.write(PATH, `${DIGEST}${'0'.repeat(200)}`), 'bad-link', 'link file is 271 bytes, expected 71'],
    [
      'symlink to a good link',
      (r) => {
        r.write('/elsewhere/link', DIGEST);
        r.vol.mkdirSync('/srv/registry/docker/registry/v2/repositories/app/_manifests/tags/v1/current', { recursive: true });
        r.vol.symlinkSync('/elsewhere/link', PATH);
      },
      'symlink',
      'link file is a symbolic link; not followed',
    ],
    [
      'missing',
      (r) => r.vol.mkdirSync('/srv/registry/docker/registry/v2/repositories/app/_manifests/tags/v1/current', { recursive: true }),
      'missing-link',
      'link file is missing',
    ],
    ['a directory where the link belongs', (r) => r.vol.mkdirSync(PATH, { recursive: true }), 'unexpected', 'link is not a regular file'],
  ];
  it.each(bad)('%s', async (_name, setup, code, message) => {
    const reg = new MemRegistry();
    setup(reg);
    expect(await readLink(reg.fs, PATH)).toEqual({ ok: false, warning: { code, path: PATH, message } });
  });

  it('a link left as link.<uuid>.tmp by an interrupted v3.1 write does not count', async () => {
    const reg = new MemRegistry();
    reg.write(`${PATH}.0b5d3c1e-aaaa-bbbb-cccc-000000000000.tmp`, DIGEST);
    expect(await readLink(reg.fs, PATH)).toEqual({
      ok: false,
      warning: { code: 'missing-link', path: PATH, message: 'link file is missing' },
    });
  });
});
