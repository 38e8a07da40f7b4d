import { afterAll, describe, expect, test } from 'vitest';
import type { Digest } from '../../src/model/names.js';
import { MediaType } from '../helpers/images.js';
import { Oracle, describeRun, type OracleRun } from '../helpers/oracle.js';
import { Obj, TreeBuilder, desc, generateTree, signSchema1, type OracleTree } from '../helpers/oracle-tree.js';
import { setupSuite } from '../helpers/suite.js';

// The differential oracle (issue 12): regprune against the registry's own
// `garbage-collect --dry-run` (Debian's docker-registry 2.8.2), on trees
// written straight into storage. For each tree:
//   (a) what regprune says garbage-collect frees now (`du --json`) is what
//       garbage-collect --dry-run lists as eligible;
//   (b) after `prune <random selection> --yes`, garbage-collect --dry-run
//       lists exactly the predicted reclaimable + already-unreferenced blobs
//       (a lower bound where the JSON says "exact": false), every manifest a
//       kept tag reaches (by garbage-collect's own edges) is still marked,
//       every untagged referrer of a kept manifest too, and the real
//       garbage-collect frees exactly the bytes its dry run listed.
// Where garbage-collect aborts on a tree, regprune must warn (exit 3) and
// claim no exact figure.
//
// REGPRUNE_ORACLE_TREES=500 runs 500 generated trees instead of the default
// fixed set (REGPRUNE_ORACLE_SEED: the first seed, default 1).

const TREES = Number(process.env['REGPRUNE_ORACLE_TREES'] ?? 40);
const FIRST_SEED = Number(process.env['REGPRUNE_ORACLE_SEED'] ?? 1);

let oracle: Oracle | undefined;
setupSuite(async () => {
  oracle = await Oracle.create();
});
afterAll(async () => {
  await oracle?.remove();
});

/** Damage that may make regprune say "lower bound" (a manifest it cannot read, a tag link it cannot parse). */
const INEXACT_OK = ['revision-blob-missing', 'tag-link-newline'];

const report = (r: OracleRun) => `${describeRun(r)}\n${r.disagreements.map((d) => `  - ${d}`).join('\n')}`;

// ---------------------------------------------------------------- named minimal trees

const platform = (architecture: string) => new Obj([['architecture', architecture], ['os', 'linux']]);

/** A docker v2 image in `repo`: config + the given layers (fresh blobs unless given); `layersKey` spells the field. */
function image(
  b: TreeBuilder,
  repo: string,
  opts: { layers?: Array<{ digest: Digest; size: number }>; layersKey?: string; oci?: boolean; extra?: Array<[string, unknown]> } = {},
) {
  const config = b.blob(repo, 60);
  const layers = opts.layers ?? [b.blob(repo, 500)];
  const oci = opts.oci === true;
  const doc = new Obj([
    ['schemaVersion', 2],
    ['mediaType', oci ? MediaType.ociManifest : MediaType.dockerManifest],
    ['config', desc(oci ? MediaType.ociConfig : MediaType.dockerConfig, config)],
    [opts.layersKey ?? 'layers', layers.map((l) => desc(oci ? MediaType.ociLayer : MediaType.dockerLayer, l))],
  ]);
  return { ...b.manifest(repo, doc), mediaType: oci ? MediaType.ociManifest : MediaType.dockerManifest, config, layers };
}

function list(b: TreeBuilder, repo: string, children: Array<{ digest: Digest; size: number; mediaType: string }>, opts: { key?: string; oci?: boolean; mediaType?: boolean } = {}) {
  const mt = opts.oci === true ? MediaType.ociIndex : MediaType.dockerManifestList;
  const doc = new Obj([
    ['schemaVersion', 2],
    ...(opts.mediaType === false ? [] : [['mediaType', mt] as [string, string]]),
    [opts.key ?? 'manifests', children.map((c, i) => desc(c.mediaType, c, [['platform', platform(['amd64', 'arm64', 'ppc64le'][i] ?? 'riscv64')]]))],
  ]);
  return { ...b.manifest(repo, doc), mediaType: mt };
}

interface NamedCase {
  readonly name: string;
  readonly tree: () => OracleTree;
  /** Whether garbage-collect --dry-run aborts on it (checked: the case means what its name says). */
  readonly gcAborts: boolean;
  /** Whether prune must claim exact figures (default: yes unless garbage-collect aborts; undefined: either). */
  readonly exact?: boolean | undefined;
  /** Whether du must claim an exact unreferenced figure (default: as `exact`). */
  readonly duExact?: boolean | undefined;
}

const NAMED: NamedCase[] = [
  {
    name: 'index children under "Manifests" (Go folds the key): pruning another tag with --untagged keeps them',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const a = image(b, 'app');
      const c = image(b, 'app');
      const idx = list(b, 'app', [a, c], { key: 'Manifests' });
      const old = image(b, 'app');
      return b.tag('app', 'multi', idx.digest).tag('app', 'old', old.digest).build(['app:old', '--untagged'], ['key-case:manifests']);
    },
  },
  {
    name: 'OCI index without mediaType, children under "manife\\u017fts": the registry reads it as an index',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const a = image(b, 'app', { oci: true });
      const idx = list(b, 'app', [a], { key: 'manife\u017fts', oci: true, mediaType: false });
      const old = image(b, 'app', { oci: true });
      return b.tag('app', 'multi', idx.digest).tag('app', 'old', old.digest).build(['app:old', '--untagged'], ['key-case:manifests', 'no-mediaType']);
    },
  },
  {
    name: 'image layers under "LAYERS" and "layer\\u017f": referenced, not unreferenced',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const x = image(b, 'app', { layersKey: 'LAYERS' });
      const y = image(b, 'app', { layersKey: 'layer\u017f' });
      return b.tag('app', 'x', x.digest).tag('app', 'y', y.digest).build(['app:x'], ['key-case:layers']);
    },
  },
  {
    name: 'repeated "layers" key: the last list wins, the first one is unreferenced',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const config = b.blob('app', 60);
      const decoy = b.blob('app', 300);
      const real = b.blob('app', 400);
      const doc = new Obj([
        ['schemaVersion', 2],
        ['mediaType', MediaType.dockerManifest],
        ['config', desc(MediaType.dockerConfig, config)],
        ['layers', [desc(MediaType.dockerLayer, decoy)]],
        ['layers', [desc(MediaType.dockerLayer, real)]],
      ]);
      const m = b.manifest('app', doc);
      const other = image(b, 'app');
      return b.tag('app', 'v1', m.digest).tag('app', 'v2', other.digest).build(['app:v2'], ['duplicate-key:layers']);
    },
  },
  {
    name: 'repeated "config" object: Go decodes both into one struct, the first digest stays',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const config = b.blob('app', 60);
      const layer = b.blob('app', 400);
      const doc = new Obj([
        ['schemaVersion', 2],
        ['mediaType', MediaType.dockerManifest],
        ['config', desc(MediaType.dockerConfig, config)],
        ['config', new Obj([['size', config.size]])],
        ['layers', [desc(MediaType.dockerLayer, layer)]],
      ]);
      const m = b.manifest('app', doc);
      const other = image(b, 'app');
      return b.tag('app', 'v1', m.digest).tag('app', 'v2', other.digest).build(['app:v2'], ['duplicate-key:config-merge']);
    },
  },
  {
    name: 'revision deleted through the API (dir without link): its blobs are unreferenced now',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const kept = image(b, 'app');
      const deleted = image(b, 'app');
      const old = image(b, 'app');
      return b.tag('app', 'v1', kept.digest).tag('app', 'old', old.digest).apiDelete('app', deleted.digest).build(['app:old'], ['api-deleted']);
    },
  },
  {
    name: 'child of a tagged index deleted through the API',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const a = image(b, 'app');
      const c = image(b, 'app');
      const idx = list(b, 'app', [a, c]);
      const old = image(b, 'app');
      return b.tag('app', 'multi', idx.digest).tag('app', 'old', old.digest).apiDelete('app', c.digest).build(['app:old', '--untagged'], ['api-deleted']);
    },
  },
  {
    name: 'index inside an index (OCI), only the outer one tagged: pruning another tag with --untagged keeps all',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const a = image(b, 'app', { oci: true });
      const c = image(b, 'app', { oci: true });
      const inner = list(b, 'app', [a, c], { oci: true });
      const d = image(b, 'app', { oci: true });
      const outer = list(b, 'app', [inner, d], { oci: true });
      const old = image(b, 'app', { oci: true });
      return b.tag('app', 'nested', outer.digest).tag('app', 'old', old.digest).build(['app:old', '--untagged'], ['nested-index']);
    },
  },
  {
    name: 'foreign layer (urls, blob absent) and a layer shared with another repository',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const shared = b.blob('app', 700);
      b.repo('lib');
      const config = b.blob('app', 60);
      const foreign = { digest: `sha256:${'f0'.repeat(32)}` as Digest, size: 1234 };
      const doc = new Obj([
        ['schemaVersion', 2],
        ['mediaType', MediaType.dockerManifest],
        ['config', desc(MediaType.dockerConfig, config)],
        ['layers', [desc('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', foreign, [['urls', ['https://example.test/base.tar.gz']]]), desc(MediaType.dockerLayer, shared)]],
      ]);
      const m = b.manifest('app', doc);
      const l = image(b, 'lib', { layers: [shared] });
      return b.tag('app', 'win', m.digest).tag('lib', 'v1', l.digest).build(['lib:v1'], ['foreign-layer', 'cross-repo']);
    },
  },
  {
    name: 'schema1, signed and unsigned: 2.8 reads both',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const docs = [0, 1].map((i) => {
        const layers = [b.blob('app', 300 + i), b.blob('app', 50)];
        const payload = JSON.stringify(
          { schemaVersion: 1, name: 'app', tag: `s${i}`, architecture: 'amd64', fsLayers: layers.map((l) => ({ blobSum: l.digest })), history: layers.map((_, j) => ({ v1Compatibility: JSON.stringify({ id: String(j).repeat(64) }) })) },
          null,
          3,
        );
        return i === 0 ? signSchema1(payload) : Buffer.from(payload);
      });
      const signed = b.manifest('app', docs[0] as Buffer);
      const unsigned = b.manifest('app', docs[1] as Buffer);
      return b.tag('app', 'signed', signed.digest).tag('app', 'unsigned', unsigned.digest).build(['app:unsigned'], ['schema1-signed', 'schema1-unsigned']);
    },
  },
  {
    name: 'untagged OCI referrer (subject) of a kept image stays with --untagged',
    gcAborts: false,
    tree: () => {
      const b = new TreeBuilder();
      const kept = image(b, 'app', { oci: true });
      const empty = b.blob('app', 2);
      const sbom = b.blob('app', 200);
      const ref = b.manifest(
        'app',
        new Obj([
          ['schemaVersion', 2],
          ['mediaType', MediaType.ociManifest],
          ['artifactType', 'application/spdx+json'],
          ['config', desc('application/vnd.oci.empty.v1+json', empty)],
          ['layers', [desc('application/spdx+json', sbom)]],
          ['subject', desc(MediaType.ociManifest, kept)],
        ]),
      );
      const old = image(b, 'app', { oci: true });
      return b.tag('app', 'v1', kept.digest).tag('app', 'old', old.digest).referrer('app', ref.digest, kept.digest).build(['app:old', '--untagged'], ['untagged-referrer']);
    },
  },
  {
    name: 'tag link with a trailing newline: garbage-collect does not read tags; regprune warns and keeps it',
    gcAborts: false,
    exact: undefined,
    tree: () => {
      const b = new TreeBuilder();
      const bad = image(b, 'app');
      const old = image(b, 'app');
      const tree = b.tag('app', 'old', old.digest).build(['app:old']);
      tree.files.set(`docker/registry/v2/repositories/app/_manifests/tags/bad/current/link`, Buffer.from(`${bad.digest}\n`));
      tree.features.add('tag-link-newline');
      return tree;
    },
  },
  {
    // garbage-collect skips a revision whose blob is gone (it cannot read it), so what only that manifest
    // referenced is freed: prune's figures count it, exactly. du still calls the repository incomplete and
    // gives a lower bound (checked as one).
    name: 'revision whose manifest blob is missing: garbage-collect skips it; prune predicts it exactly',
    gcAborts: false,
    exact: true,
    duExact: undefined,
    tree: () => {
      const b = new TreeBuilder();
      const kept = image(b, 'app');
      const gone = image(b, 'app');
      const old = image(b, 'app');
      const tree = b.tag('app', 'v1', kept.digest).tag('app', 'old', old.digest).build(['app:old'], ['revision-blob-missing']);
      tree.files.delete(`docker/registry/v2/blobs/sha256/${gone.digest.slice(7, 9)}/${gone.digest.slice(7)}/data`);
      return tree;
    },
  },
  {
    name: 'revision link with a trailing newline: garbage-collect aborts',
    gcAborts: true,
    tree: () => {
      const b = new TreeBuilder();
      const kept = image(b, 'app');
      const bad = b.blob('app', 10);
      const m = b.manifest('app', new Obj([['schemaVersion', 2], ['mediaType', MediaType.dockerManifest], ['config', desc(MediaType.dockerConfig, bad)], ['layers', []]]));
      const tree = b.tag('app', 'v1', kept.digest).build(['app:v1']);
      tree.files.set(`docker/registry/v2/repositories/app/_manifests/revisions/sha256/${m.digest.slice(7)}/link`, Buffer.from(`${m.digest}\n`));
      tree.features.add('revision-link-newline');
      return tree;
    },
  },
  {
    name: 'unknown manifest media type: garbage-collect aborts',
    gcAborts: true,
    tree: () => {
      const b = new TreeBuilder();
      const kept = image(b, 'app');
      const l = b.blob('app', 10);
      const m = b.manifest('app', new Obj([['schemaVersion', 2], ['mediaType', 'application/vnd.example.unknown+json'], ['layers', [desc(MediaType.ociLayer, l)]]]));
      return b.tag('app', 'v1', kept.digest).tag('app', 'odd', m.digest).build(['app:v1'], ['unknown-media-type']);
    },
  },
];

describe('differential oracle: named minimal trees', () => {
  test.each(NAMED.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const o = oracle as Oracle;
    const r = await o.check(c.tree());
    expect(r.gcAborted, `garbage-collect ${r.gcAborted ? 'aborted' : 'did not abort'} on this tree`).toBe(c.gcAborts);
    const exact = 'exact' in c ? c.exact : !c.gcAborts;
    if (exact !== undefined) expect(r.exact, `prune claims ${r.exact ? 'exact figures' : 'a lower bound'}`).toBe(exact);
    const duExact = 'duExact' in c ? c.duExact : exact;
    if (duExact !== undefined && !c.gcAborts) expect(r.duExact, `du claims ${r.duExact ? 'an exact figure' : 'a lower bound'}`).toBe(duExact);
    expect(r.disagreements, report(r)).toEqual([]);
  });
});

describe('differential oracle: generated trees', () => {
  test(`${TREES} trees from seed ${FIRST_SEED}`, async () => {
    const o = oracle as Oracle;
    const runs: OracleRun[] = [];
    const t0 = Date.now();
    for (let seed = FIRST_SEED; seed < FIRST_SEED + TREES; seed++) runs.push(await o.check(generateTree(seed)));
    // A lower bound is only acceptable where the tree has something regprune cannot read exactly.
    for (const r of runs) {
      if (!r.gcAborted && !(r.exact && r.duExact) && !INEXACT_OK.some((f) => r.tree.features.has(f))) r.disagreements.push('regprune claims only a lower bound on a tree it should read exactly');
    }
    const bad = runs.filter((r) => r.disagreements.length > 0);
    const features = new Map<string, number>();
    for (const r of runs) for (const f of r.tree.features) features.set(f, (features.get(f) ?? 0) + 1);
    console.log(
      `oracle: ${runs.length} trees (seeds ${FIRST_SEED}..${FIRST_SEED + TREES - 1}) in ${Math.round((Date.now() - t0) / 1000)} s; ` +
        `garbage-collect aborted on ${runs.filter((r) => r.gcAborted).length}; ` +
        `the prune removed tags in ${runs.filter((r) => r.removed.tags > 0).length}, manifests in ${runs.filter((r) => r.removed.manifests > 0).length} ` +
        `(${runs.reduce((n, r) => n + r.removed.manifests, 0)} in all); prune said lower bound on ${runs.filter((r) => !r.gcAborted && !r.exact).length}, du on ${runs.filter((r) => !r.gcAborted && !r.duExact).length}; ${bad.length} with disagreements\n` +
        `features (trees): ${[...features].sort().map(([f, n]) => `${f} ${n}`).join(', ')}`,
    );
    // Guards the generator: the fixed set must exercise what it claims to.
    if (TREES >= 40) {
      for (const f of ['key-case:manifests', 'key-case:layers', 'duplicate-key:layers', 'nested-index', 'shared-child', 'child-tagged', 'api-deleted', 'foreign-layer', 'schema1-signed', 'cross-repo', 'untagged-referrer', 'referrers-tag', 'cosign-sig']) {
        expect(features.get(f) ?? 0, `no tree with ${f}`).toBeGreaterThan(0);
      }
      expect(runs.filter((r) => r.gcAborted).length, 'some trees make garbage-collect abort').toBeGreaterThan(0);
      // The prediction is only tested where the prune unlinks something.
      expect(runs.filter((r) => r.removed.manifests > 0).length, 'trees where the prune unlinked manifests').toBeGreaterThan(TREES / 2);
    }
    expect(bad.map(report).join('\n'), `${bad.length} of ${runs.length} trees disagree`).toBe('');
  }, Math.max(300_000, TREES * 5_000));
});
