import { KNOWN_CONFIGS } from '../gc/adapters.js';
import type { PreparedGc } from '../gc/collect.js';
import { formatArgv } from '../gc/process.js';
import { findLocalConfig } from '../gc/verify.js';
import type { Layout } from '../storage/paths.js';
import type { CliDeps } from './deps.js';

export interface NextStep {
  /** The regprune command that does it all (measures, removes dangling layer links, restarts). */
  readonly regprune: string;
  /** The same by hand, one command a line. */
  readonly byHand: readonly string[];
  /** Set when part of a command is a placeholder for something regprune cannot know. */
  readonly placeholder: string | undefined;
}

const q = (s: string) => formatArgv([s]);

/**
 * The exact garbage-collect and restart commands for this storage, after a
 * run that removed something and ran no garbage-collect: where --gc named a
 * container or pod (a --gc-dry-run), its exec form; otherwise the local
 * registry whose config's rootdirectory is the root; otherwise the
 * container form with the container to fill in.
 */
export async function nextStep(deps: CliDeps, lay: Layout, prepared: PreparedGc | undefined): Promise<NextStep> {
  const root = q(lay.root);
  if (prepared !== undefined) {
    const mode = prepared.runner.mode;
    const own = prepared.restart ?? prepared.runner.restart();
    const restarts = Array.isArray(own) ? (own as readonly (readonly string[])[]).map((a) => formatArgv(a)) : [];
    const restartFlag = prepared.restart !== undefined || Array.isArray(own) ? ' --restart' : '';
    return {
      regprune: `regprune gc ${mode} --root ${root} --gc-config ${q(prepared.config)}${restartFlag}`,
      byHand: [formatArgv(prepared.runner.garbageCollect(prepared.config, false)), ...(restarts.length > 0 ? restarts : [`restart the registry in ${prepared.runner.where}`])],
      placeholder: undefined,
    };
  }
  const config = await findLocalConfig(deps.fs, lay.root, deps.env);
  if (config !== undefined) {
    const bin = (await deps.run.which('registry')) ?? (await deps.run.which('docker-registry'));
    // Debian's package runs as the docker-registry service; other installs name their own unit.
    const service = bin?.endsWith('/docker-registry') === true ? 'docker-registry' : 'registry';
    return {
      regprune: `regprune gc local --root ${root} --gc-config ${q(config)} --restart-cmd ${q(`systemctl restart ${service}`)}`,
      byHand: [formatArgv([bin ?? 'registry', 'garbage-collect', config]), `systemctl restart ${service}`],
      placeholder: bin === undefined ? 'the registry binary was not found on PATH' : undefined,
    };
  }
  return {
    regprune: `regprune gc docker:CONTAINER --root ${root} --restart`,
    byHand: [`docker exec CONTAINER registry garbage-collect ${KNOWN_CONFIGS[0]}`, 'docker restart CONTAINER'],
    placeholder: `no registry config on this host names ${lay.root}: CONTAINER is the registry's container (registry:3 reads ${KNOWN_CONFIGS[1]}; on Kubernetes use kubectl:[NS/]deployment/NAME)`,
  };
}

export function nextStepText(step: NextStep): string {
  return (
    'Next: run garbage-collect (never with -m) to free the space, then restart the registry (its blob cache is stale); ' +
    'with the registry read-only or stopped (docs/operations.md):\n' +
    `  ${step.regprune}\n` +
    'or by hand:\n' +
    step.byHand.map((l) => `  ${l}\n`).join('') +
    (step.placeholder === undefined ? '' : `(${step.placeholder})\n`)
  );
}
