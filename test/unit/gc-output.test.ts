import { describe, expect, test } from 'vitest';
import { isMarkingLine, parseGcOutput } from '../../src/gc/output.js';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const D3 = `sha256:${'c'.repeat(64)}`;

// What 2.8.2 prints on stdout (checked against the real binary in test/integration/gc-modes.test.ts).
const REAL = [
  `app: marking manifest ${D1} `,
  `app: marking blob ${D2}`,
  `team/app/api: marking blob ${D3}`,
  '',
  '4 blobs marked, 3 blobs and 0 manifests eligible for deletion',
  `blob eligible for deletion: ${D1}`,
  `blob eligible for deletion: ${D2}`,
  `blob eligible for deletion: ${D3}`,
  '',
].join('\n');

describe('parseGcOutput', () => {
  test.each([
    {
      name: 'the 2.8.2 output',
      text: REAL,
      want: { summary: true, marked: 4, blobsEligible: 3, manifestsEligible: 0, eligibleBlobs: [D1, D2, D3], eligibleManifests: [], markingLines: 3 },
    },
    {
      name: 'nothing to delete',
      text: `app: marking manifest ${D1} \n\n1 blobs marked, 0 blobs and 0 manifests eligible for deletion\n`,
      want: { summary: true, marked: 1, blobsEligible: 0, manifestsEligible: 0, eligibleBlobs: [], eligibleManifests: [], markingLines: 1 },
    },
    {
      name: 'empty storage',
      text: '\n0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n',
      want: { summary: true, marked: 0, blobsEligible: 0, manifestsEligible: 0, eligibleBlobs: [], eligibleManifests: [], markingLines: 0 },
    },
    {
      name: 'with -m (never passed by regprune, still understood)',
      text: `manifest eligible for deletion: ${D1}\n\n2 blobs marked, 1 blobs and 1 manifests eligible for deletion\nblob eligible for deletion: ${D2}\n`,
      want: { summary: true, marked: 2, blobsEligible: 1, manifestsEligible: 1, eligibleBlobs: [D2], eligibleManifests: [D1], markingLines: 0 },
    },
    {
      name: 'CRLF line ends',
      text: `3 blobs marked, 1 blobs and 0 manifests eligible for deletion\r\nblob eligible for deletion: ${D1}\r\n`,
      want: { summary: true, marked: 3, blobsEligible: 1, manifestsEligible: 0, eligibleBlobs: [D1], eligibleManifests: [], markingLines: 0 },
    },
    {
      name: 'failed before the summary: counts from the lines seen',
      text: `app: marking manifest ${D1} \nfailed to garbage collect: some error\n`,
      want: { summary: false, marked: 0, blobsEligible: 0, manifestsEligible: 0, eligibleBlobs: [], eligibleManifests: [], markingLines: 1 },
    },
    {
      name: 'no output',
      text: '',
      want: { summary: false, marked: 0, blobsEligible: 0, manifestsEligible: 0, eligibleBlobs: [], eligibleManifests: [], markingLines: 0 },
    },
    {
      name: 'a malformed digest is not counted as a line',
      text: '1 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: sha256:xyz\n',
      want: { summary: true, marked: 1, blobsEligible: 1, manifestsEligible: 0, eligibleBlobs: [], eligibleManifests: [], markingLines: 0 },
    },
  ])('$name', ({ text, want }) => {
    expect(parseGcOutput(text)).toEqual(want);
  });

  test('is pure: same text, same result', () => {
    expect(parseGcOutput(REAL)).toEqual(parseGcOutput(REAL));
  });

  test.each([
    [`app: marking manifest ${D1} `, true],
    [`team/app: marking blob ${D2}`, true],
    [`blob eligible for deletion: ${D1}`, false],
    ['4 blobs marked, 3 blobs and 0 manifests eligible for deletion', false],
  ])('isMarkingLine(%j) = %s', (line, want) => {
    expect(isMarkingLine(line)).toBe(want);
  });
});
