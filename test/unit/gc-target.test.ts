import { describe, expect, test } from 'vitest';
import { formatGcMode, parseGcMode, splitCommand } from '../../src/gc/target.js';
import { UsageError } from '../../src/model/errors.js';

describe('parseGcMode', () => {
  test.each([
    { name: 'none', mode: 'none', want: undefined },
    { name: 'local', mode: 'local', want: { kind: 'local', bin: undefined } },
    { name: 'local with --registry-bin', mode: 'local', extras: { registryBin: '/opt/registry/bin/registry' }, want: { kind: 'local', bin: '/opt/registry/bin/registry' } },
    { name: 'docker name', mode: 'docker:registry', want: { kind: 'docker', container: 'registry' } },
    { name: 'docker name with . _ -', mode: 'docker:my_registry.1-a', want: { kind: 'docker', container: 'my_registry.1-a' } },
    { name: 'docker id', mode: 'docker:3f4e5a6b7c8d', want: { kind: 'docker', container: '3f4e5a6b7c8d' } },
    {
      name: 'kubectl pod',
      mode: 'kubectl:registry-0',
      want: { kind: 'kubectl', namespace: undefined, resource: { kind: 'pod', name: 'registry-0' }, context: undefined },
    },
    {
      name: 'kubectl namespace/pod',
      mode: 'kubectl:infra/registry-0',
      want: { kind: 'kubectl', namespace: 'infra', resource: { kind: 'pod', name: 'registry-0' }, context: undefined },
    },
    {
      name: 'kubectl deployment',
      mode: 'kubectl:deployment/registry',
      want: { kind: 'kubectl', namespace: undefined, resource: { kind: 'deployment', name: 'registry' }, context: undefined },
    },
    {
      name: 'kubectl namespace/deployment with a GKE context',
      mode: 'kubectl:infra/deployment/registry',
      extras: { kubeContext: 'gke_my-project_europe-west1_prod' },
      want: { kind: 'kubectl', namespace: 'infra', resource: { kind: 'deployment', name: 'registry' }, context: 'gke_my-project_europe-west1_prod' },
    },
    {
      name: 'kubectl with an EKS context',
      mode: 'kubectl:registry-0',
      extras: { kubeContext: 'arn:aws:eks:eu-west-1:123456789012:cluster/prod' },
      want: { kind: 'kubectl', namespace: undefined, resource: { kind: 'pod', name: 'registry-0' }, context: 'arn:aws:eks:eu-west-1:123456789012:cluster/prod' },
    },
  ])('$name', ({ mode, extras, want }) => {
    expect(parseGcMode(mode, extras)).toEqual(want);
  });

  test.each([
    { mode: 'docker:', message: /empty container name/ },
    { mode: 'docker:a;rm -rf /', message: /not a docker container name/ },
    { mode: 'docker:-it', message: /not a docker container name/ },
    { mode: 'docker:.hidden', message: /not a docker container name/ },
    { mode: 'docker:a b', message: /not a docker container name/ },
    { mode: `docker:${'a'.repeat(256)}`, message: /longer than 255/ },
    { mode: 'kubectl:', message: /empty pod name/ },
    { mode: 'kubectl:Registry', message: /not a Kubernetes pod name/ },
    { mode: 'kubectl:-n/registry', message: /not a Kubernetes namespace/ },
    { mode: 'kubectl:infra/', message: /empty pod name/ },
    { mode: 'kubectl:deployment/', message: /empty deployment name/ },
    { mode: 'kubectl:infra/deployment/Reg', message: /not a Kubernetes deployment name/ },
    { mode: 'kubectl:infra/statefulset/registry', message: /expected kubectl:\[NAMESPACE\/\]POD/ },
    { mode: `kubectl:${'n'.repeat(64)}/registry`, message: /not a Kubernetes namespace/ },
    { mode: 'kubectl:a$(id)', message: /not a Kubernetes pod name/ },
    { mode: 'podman:registry', message: /unknown garbage-collect mode/ },
    { mode: '', message: /unknown garbage-collect mode/ },
    { mode: 'kubectl:registry-0', extras: { kubeContext: '' }, message: /empty context name/ },
    { mode: 'kubectl:registry-0', extras: { kubeContext: '--all' }, message: /not a kubeconfig context name/ },
    { mode: 'kubectl:registry-0', extras: { kubeContext: 'a b' }, message: /not a kubeconfig context name/ },
    { mode: 'docker:registry', extras: { kubeContext: 'prod' }, message: /--kube-context applies only to --gc kubectl/ },
    { mode: 'docker:registry', extras: { registryBin: '/usr/bin/registry' }, message: /--registry-bin applies only to --gc local/ },
    { mode: 'local', extras: { registryBin: '-v' }, message: /not a program path/ },
  ])('refuses $mode $extras', ({ mode, extras, message }) => {
    const run = () => parseGcMode(mode, extras);
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });

  test.each(['none', 'local', 'docker:registry', 'kubectl:registry-0', 'kubectl:infra/registry-0', 'kubectl:deployment/registry', 'kubectl:infra/deployment/registry'])(
    'formatGcMode round-trips %s',
    (mode) => {
      expect(formatGcMode(parseGcMode(mode))).toBe(mode);
    },
  );
});

describe('splitCommand (--restart-cmd, no shell)', () => {
  test.each([
    { text: 'systemctl restart docker-registry', want: ['systemctl', 'restart', 'docker-registry'] },
    { text: '  systemctl   restart\tregistry  ', want: ['systemctl', 'restart', 'registry'] },
    { text: `docker compose -f '/srv/my stack/compose.yml' restart registry`, want: ['docker', 'compose', '-f', '/srv/my stack/compose.yml', 'restart', 'registry'] },
    { text: 'sudo -n "/usr/local/bin/restart registry"', want: ['sudo', '-n', '/usr/local/bin/restart registry'] },
    { text: 'echo a\\ b', want: ['echo', 'a b'] },
    { text: `echo '' x`, want: ['echo', '', 'x'] },
    { text: 'echo "a;b"', want: ['echo', 'a;b'] },
    { text: 'echo "say \\"hi\\""', want: ['echo', 'say "hi"'] },
  ])('$text', ({ text, want }) => {
    expect(splitCommand(text)).toEqual(want);
  });

  test.each([
    { text: '', message: /empty command/ },
    { text: '   ', message: /empty command/ },
    { text: 'systemctl restart registry; rm -rf /', message: /";" would need a shell/ },
    { text: 'a && b', message: /"&" would need a shell/ },
    { text: 'a | b', message: /"\|" would need a shell/ },
    { text: 'restart $SERVICE', message: /"\$" would need a shell/ },
    { text: 'echo "$HOME"', message: /\$ would need a shell/ },
    { text: 'echo `id`', message: /would need a shell/ },
    { text: 'a > /tmp/x', message: /would need a shell/ },
    { text: "echo 'unterminated", message: /unterminated ' quote/ },
    { text: 'echo \\', message: /lone backslash/ },
  ])('refuses $text', ({ text, message }) => {
    expect(() => splitCommand(text)).toThrow(UsageError);
    expect(() => splitCommand(text)).toThrow(message);
  });
});
