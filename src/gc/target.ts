import { UsageError } from '../model/errors.js';
import type { Argv } from './process.js';

/**
 * Where garbage-collect runs, parsed from `--gc MODE`. Every name is checked
 * here, before anything is touched: these strings end up in argv of docker
 * and kubectl (never a shell, but a name starting with `-` would be read as
 * an option).
 */
export type GcTarget =
  | { readonly kind: 'docker'; readonly container: string }
  | {
      readonly kind: 'kubectl';
      readonly namespace: string | undefined;
      readonly resource: { readonly kind: 'pod' | 'deployment'; readonly name: string };
      readonly context: string | undefined;
    }
  | { readonly kind: 'local'; readonly bin: string | undefined };

export interface GcModeExtras {
  readonly kubeContext?: string | undefined;
  readonly registryBin?: string | undefined;
}

// docker's own rule for container names (a container ID matches it too).
const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// Kubernetes: namespaces are DNS-1123 labels, pod and deployment names DNS-1123 subdomains.
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
// Context names are free-form in kubeconfig (GKE: gke_project_zone_name, EKS:
// arn:aws:eks:region:account:cluster/name, user@cluster): only what would
// change the meaning of argv is refused.
const KUBE_CONTEXT = /^[^\s\-\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*$/;

const MODES_HINT = 'modes: none, local, docker:CONTAINER, kubectl:[NAMESPACE/]POD, kubectl:[NAMESPACE/]deployment/NAME';

export function dockerNameProblem(name: string): string | undefined {
  if (name === '') return 'empty container name';
  if (name.length > 255) return 'container name longer than 255 characters';
  if (!DOCKER_NAME.test(name)) return 'not a docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)';
  return undefined;
}

export function namespaceProblem(name: string): string | undefined {
  if (name === '') return 'empty namespace';
  if (name.length > 63 || !DNS1123_LABEL.test(name)) return 'not a Kubernetes namespace (DNS-1123 label: a-z 0-9 -, at most 63)';
  return undefined;
}

export function objectNameProblem(name: string, what: 'pod' | 'deployment'): string | undefined {
  if (name === '') return `empty ${what} name`;
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) return `not a Kubernetes ${what} name (DNS-1123 subdomain: a-z 0-9 - ., at most 253)`;
  return undefined;
}

export function kubeContextProblem(name: string): string | undefined {
  if (name === '') return 'empty context name';
  if (name.length > 253 || !KUBE_CONTEXT.test(name)) return 'not a kubeconfig context name (no spaces or control characters, not starting with -)';
  return undefined;
}

function check(problem: string | undefined, what: string): void {
  if (problem !== undefined) throw new UsageError(`${what}: ${problem}`, { hint: MODES_HINT });
}

/** `--gc MODE` → a target, or undefined for `none`. Throws a UsageError naming the bad part. */
export function parseGcMode(text: string, extras: GcModeExtras = {}): GcTarget | undefined {
  const mode = text.trim();
  const what = `--gc ${JSON.stringify(text)}`;
  let target: GcTarget | undefined;
  if (mode === 'none') target = undefined;
  else if (mode === 'local') target = { kind: 'local', bin: undefined };
  else if (mode.startsWith('docker:')) {
    const container = mode.slice('docker:'.length);
    check(dockerNameProblem(container), what);
    target = { kind: 'docker', container };
  } else if (mode.startsWith('kubectl:')) {
    const parts = mode.slice('kubectl:'.length).split('/');
    let namespace: string | undefined;
    let resource: { kind: 'pod' | 'deployment'; name: string };
    if (parts.length === 1) resource = { kind: 'pod', name: parts[0] ?? '' };
    else if (parts.length === 2 && parts[0] === 'deployment') resource = { kind: 'deployment', name: parts[1] ?? '' };
    else if (parts.length === 2) {
      namespace = parts[0];
      resource = { kind: 'pod', name: parts[1] ?? '' };
    } else if (parts.length === 3 && parts[1] === 'deployment') {
      namespace = parts[0];
      resource = { kind: 'deployment', name: parts[2] ?? '' };
    } else {
      throw new UsageError(`${what}: expected kubectl:[NAMESPACE/]POD or kubectl:[NAMESPACE/]deployment/NAME`, { hint: MODES_HINT });
    }
    if (namespace !== undefined) check(namespaceProblem(namespace), what);
    check(objectNameProblem(resource.name, resource.kind), what);
    target = { kind: 'kubectl', namespace, resource, context: undefined };
  } else {
    throw new UsageError(`${what}: unknown garbage-collect mode`, { hint: MODES_HINT });
  }

  if (extras.kubeContext !== undefined) {
    if (target?.kind !== 'kubectl') throw new UsageError('--kube-context applies only to --gc kubectl:...');
    check(kubeContextProblem(extras.kubeContext), `--kube-context ${JSON.stringify(extras.kubeContext)}`);
    target = { ...target, context: extras.kubeContext };
  }
  if (extras.registryBin !== undefined) {
    if (target?.kind !== 'local') throw new UsageError('--registry-bin applies only to --gc local (in a container the binary is `registry`)');
    const bin = extras.registryBin;
    if (bin.trim() === '' || bin.startsWith('-') || /[\x00-\x1f]/.test(bin)) throw new UsageError(`--registry-bin ${JSON.stringify(bin)}: not a program path`);
    target = { kind: 'local', bin };
  }
  return target;
}

/** The mode as the user would write it: `docker:registry`, `kubectl:infra/deployment/registry`. */
export function formatGcMode(target: GcTarget | undefined): string {
  if (target === undefined) return 'none';
  switch (target.kind) {
    case 'docker':
      return `docker:${target.container}`;
    case 'kubectl': {
      const obj = target.resource.kind === 'deployment' ? `deployment/${target.resource.name}` : target.resource.name;
      return `kubectl:${target.namespace === undefined ? '' : `${target.namespace}/`}${obj}`;
    }
    case 'local':
      return 'local';
  }
}

/**
 * Splits `--restart-cmd` into argv the way a shell splits words (quotes and
 * backslashes), without a shell: no variables, globs, pipes or `;`. Those
 * characters unquoted are refused rather than passed on literally, because
 * the user surely meant a shell.
 */
export function splitCommand(text: string, what = '--restart-cmd'): Argv {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) cur += text[++i];
      else if (c === '$' || c === '`') throw new UsageError(`${what}: ${c} would need a shell; regprune runs the command without one`);
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new UsageError(`${what}: ends with a lone backslash`);
      cur += text[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (';&|<>$`(){}*?[]#~\n\r'.includes(c)) {
      throw new UsageError(`${what} ${JSON.stringify(text)}: ${JSON.stringify(c)} would need a shell; regprune runs one program without a shell`, {
        hint: 'put the steps in a script and pass its path, or quote the character if it is meant literally',
      });
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new UsageError(`${what} ${JSON.stringify(text)}: unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  const [first, ...rest] = words;
  if (first === undefined || first === '') throw new UsageError(`${what}: empty command`);
  return [first, ...rest];
}
