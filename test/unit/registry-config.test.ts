import { describe, expect, test } from 'vitest';
import { parseRegistryConfig, s3KeyPrefix, type StorageConfig } from '../../src/config/registry-config.js';
import { UsageError } from '../../src/model/errors.js';

const S3_FILE = `version: 0.1
storage:
  s3:
    accesskey: "test:tester"
    secretkey: testing
    region: us-east-1
    regionendpoint: http://127.0.0.1:8080
    bucket: reg
    secure: false
    v4auth: true
    rootdirectory: /reg
  delete:
    enabled: true
  redirect:
    disable: true
`;

const S3_DEFAULTS = {
  driver: 's3',
  regionendpoint: undefined,
  rootdirectory: '',
  accesskey: undefined,
  secretkey: undefined,
  secure: true,
  skipverify: false,
  v4auth: true,
  forcepathstyle: false,
} as const;

interface Case {
  readonly name: string;
  readonly file: string;
  readonly env?: Record<string, string>;
  readonly want: StorageConfig;
}

const cases: Case[] = [
  {
    name: 'filesystem with rootdirectory',
    file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\n',
    want: { driver: 'filesystem', rootdirectory: '/var/lib/docker-registry' },
  },
  {
    name: 'filesystem without parameters: the driver default root',
    file: 'version: 0.1\nstorage:\n  filesystem:\n',
    want: { driver: 'filesystem', rootdirectory: '/var/lib/registry' },
  },
  {
    name: 'storage given as a plain driver name',
    file: 'version: 0.1\nstorage: filesystem\n',
    want: { driver: 'filesystem', rootdirectory: '/var/lib/registry' },
  },
  {
    name: 's3 as the test harness writes it (custom endpoint: path-style)',
    file: S3_FILE,
    want: {
      driver: 's3',
      bucket: 'reg',
      region: 'us-east-1',
      regionendpoint: 'http://127.0.0.1:8080',
      rootdirectory: '/reg',
      accesskey: 'test:tester',
      secretkey: 'testing',
      secure: false,
      skipverify: false,
      v4auth: true,
      forcepathstyle: true,
    },
  },
  {
    name: 's3 on AWS without keys: defaults, credential chain, virtual-hosted style',
    file: 'version: 0.1\nstorage:\n  s3:\n    region: eu-west-1\n    bucket: team-registry\n',
    want: { ...S3_DEFAULTS, bucket: 'team-registry', region: 'eu-west-1' },
  },
  {
    name: 'booleans as YAML 1.1 words and as strconv.ParseBool strings',
    file: 'version: 0.1\nstorage:\n  s3:\n    region: r\n    bucket: b\n    secure: off\n    skipverify: "T"\n    v4auth: "0"\n    forcepathstyle: yes\n',
    want: { ...S3_DEFAULTS, bucket: 'b', region: 'r', secure: false, skipverify: true, v4auth: false, forcepathstyle: true },
  },
  {
    name: 'explicit forcepathstyle false wins over a regionendpoint',
    file: 'version: 0.1\nstorage:\n  s3:\n    region: r\n    bucket: b\n    regionendpoint: https://minio.local\n    forcepathstyle: false\n',
    want: { ...S3_DEFAULTS, bucket: 'b', region: 'r', regionendpoint: 'https://minio.local', forcepathstyle: false },
  },
  {
    name: 'a numeric bucket name is stringified as Go does',
    file: 'version: 0.1\nstorage:\n  s3:\n    region: r\n    bucket: 12345\n',
    want: { ...S3_DEFAULTS, bucket: '12345', region: 'r' },
  },
  {
    name: 'mixed-case keys in the file are not the driver\'s parameters',
    file: 'version: 0.1\nstorage:\n  s3:\n    region: r\n    bucket: b\n    regionEndpoint: http://ignored\n',
    want: { ...S3_DEFAULTS, bucket: 'b', region: 'r' },
  },
  {
    name: 'env overrides a parameter of the configured driver',
    file: S3_FILE,
    env: { REGISTRY_STORAGE_S3_BUCKET: 'other', REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/elsewhere', REGISTRY_STORAGE_S3_SECURE: 'true' },
    want: {
      driver: 's3',
      bucket: 'other',
      region: 'us-east-1',
      regionendpoint: 'http://127.0.0.1:8080',
      rootdirectory: '/elsewhere',
      accesskey: 'test:tester',
      secretkey: 'testing',
      secure: true,
      skipverify: false,
      v4auth: true,
      forcepathstyle: true,
    },
  },
  {
    name: 'REGISTRY_STORAGE=s3 replaces the file\'s driver; the longer names apply after it',
    file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /data\n',
    env: { REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'us-east-2', REGISTRY_STORAGE: 's3' },
    want: { ...S3_DEFAULTS, bucket: 'b', region: 'us-east-2' },
  },
  {
    name: 'env alone configures storage when the file has none',
    file: 'version: 0.1\nhttp:\n  addr: :5000\n',
    env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/registry' },
    want: { driver: 'filesystem', rootdirectory: '/srv/registry' },
  },
  {
    name: 'env setting delete or maintenance adds no driver',
    file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /data\n',
    env: { REGISTRY_STORAGE_DELETE_ENABLED: 'true', REGISTRY_STORAGE_MAINTENANCE_READONLY: '{"enabled":true}', REGISTRY_HTTP_ADDR: ':1' },
    want: { driver: 'filesystem', rootdirectory: '/data' },
  },
  {
    name: 'lowercase or other-prefix variables are not overrides',
    file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /data\n',
    env: { registry_storage_filesystem_rootdirectory: '/x', REGPRUNE_STORAGE: 's3', REGISTRYSTORAGE: 's3' },
    want: { driver: 'filesystem', rootdirectory: '/data' },
  },
];

describe('parseRegistryConfig', () => {
  test.each(cases)('$name', ({ file, env, want }) => {
    expect(parseRegistryConfig(file, env ?? {}, '/etc/docker/registry/config.yml')).toEqual(want);
  });

  const errors: Array<{ name: string; file: string; env?: Record<string, string>; message: RegExp }> = [
    { name: 'gcs is named', file: 'version: 0.1\nstorage:\n  gcs:\n    bucket: b\n', message: /storage driver "gcs" is not supported by regprune/ },
    { name: 'azure is named', file: 'version: 0.1\nstorage:\n  azure:\n    container: c\n', message: /"azure" is not supported/ },
    { name: 'swift is named', file: 'version: 0.1\nstorage:\n  swift:\n    container: c\n', message: /"swift" is not supported/ },
    { name: 'inmemory is named', file: 'version: 0.1\nstorage: inmemory\n', message: /"inmemory" is not supported/ },
    { name: 'oss is named', file: 'version: 0.1\nstorage:\n  oss:\n    bucket: b\n', message: /"oss" is not supported/ },
    {
      name: 'two drivers in the file',
      file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /a\n  s3:\n    bucket: b\n',
      message: /multiple storage drivers .*filesystem, s3/,
    },
    {
      name: 'an override for another driver makes two',
      file: 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /a\n',
      env: { REGISTRY_STORAGE_S3_BUCKET: 'b' },
      message: /multiple storage drivers .*filesystem, s3/,
    },
    { name: 'no storage at all', file: 'version: 0.1\n', message: /no storage driver configured/ },
    { name: 'only settings, no driver', file: 'version: 0.1\nstorage:\n  delete:\n    enabled: true\n', message: /no storage driver configured/ },
    { name: 'missing version', file: 'storage:\n  filesystem: {}\n', message: /unsupported version ""/ },
    { name: 'other version', file: 'version: 0.2\nstorage:\n  filesystem: {}\n', message: /unsupported version "0.2"/ },
    { name: 'version written 0.10', file: 'version: 0.10\nstorage:\n  filesystem: {}\n', message: /unsupported version "0.10"/ },
    { name: 's3 without bucket', file: 'version: 0.1\nstorage:\n  s3:\n    region: r\n', message: /storage\.s3\.bucket is missing/ },
    { name: 's3 without region', file: 'version: 0.1\nstorage:\n  s3:\n    bucket: b\n', message: /storage\.s3\.region is missing/ },
    { name: 's3 with a non-boolean secure', file: 'version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    secure: maybe\n', message: /storage\.s3\.secure should be a boolean/ },
    { name: 's3 with an access key and no secret', file: 'version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: r\n    accesskey: AK\n', message: /secretkey is missing while accesskey is set/ },
    { name: 'not YAML', file: 'version: 0.1\nstorage: [\n', message: /not valid YAML/ },
    { name: 'not a map', file: '- a\n- b\n', message: /expected a YAML map/ },
    { name: 'a driver whose parameters are a list', file: 'version: 0.1\nstorage:\n  s3: [a]\n', message: /storage\.s3 must be a map/ },
  ];
  test.each(errors)('usage error: $name', ({ file, env, message }) => {
    let thrown: unknown;
    try {
      parseRegistryConfig(file, env ?? {}, '/etc/r/config.yml');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    expect((thrown as Error).message).toMatch(/^--config \/etc\/r\/config\.yml: /);
    expect((thrown as Error).message).toMatch(message);
  });
});

describe('s3KeyPrefix', () => {
  test.each([
    ['/reg', 'reg/'],
    ['reg/', 'reg/'],
    ['/a/b/', 'a/b/'],
    ['/', ''],
    ['', ''],
  ])('rootdirectory %j gives key prefix %j', (root, want) => {
    expect(s3KeyPrefix(root)).toBe(want);
  });
});
