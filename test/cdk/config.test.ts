import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTenants, readTenantsFile, TenantConfigError } from '../../lib/config.ts';

const valid = { tenantId: 'acme-2', region: 'us-east-1', gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 16 } };
const dir = mkdtempSync(join(tmpdir(), 'bakehouse-tenants-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The problems a config is rejected with, one `path: message` each. */
function problems(raw: unknown): string[] {
  try {
    loadTenants(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(TenantConfigError);
    return (error as TenantConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('tenant config', () => {
  it('accepts the example bakehouse.tenants.json', () => {
    const tenants = readTenantsFile(new URL('../../bakehouse.tenants.json', import.meta.url).pathname);
    expect(tenants.map((tenant) => tenant.tenantId)).toEqual(['demo']);
  });

  it('fills in secure defaults', () => {
    expect(loadTenants({ tenants: [valid] })).toEqual([
      {
        ...valid,
        gpu: { ...valid.gpu, spot: false, jobVcpus: 4, jobMemoryMiB: 14_336, gpuMemoryGiB: 24 },
        gpuLanes: [],
        cpu: { maxVcpus: 16 },
        deletionProtection: true,
        api: { logRetentionDays: 30 },
        webhooks: { allowPrivateAddresses: false, allowHttp: false },
        dataPlane: { enabled: false, desiredTasks: 1, maxTasks: 4, cpu: 1024, memoryMiB: 2048, allowHttp: false },
      },
    ]);
  });

  it('names the field of a bad tenantId', () => {
    expect(() => loadTenants({ tenants: [{ ...valid, tenantId: 'Acme_Corp' }] }, 'tenants.json')).toThrow(
      'Invalid tenant config in tenants.json:\n' +
        '  - tenants[0].tenantId: must be 1-32 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen',
    );
  });

  it('lists every bad field at once, each with its path', () => {
    expect(
      problems({
        tenants: [
          valid,
          {
            tenantId: 'beta',
            account: '1234',
            region: 'Europe',
            gpu: { instanceTypes: [], maxVcpus: 2.5 },
            domain: { name: 'api.example.com', certificateArn: 'not-an-arn' },
            alarmEmail: 'ops-at-example',
            api: { reservedConcurrency: 0, logRetentionDays: 31 },
            gpus: true,
          },
        ],
      }),
    ).toEqual([
      'tenants[1].account: must be a 12-digit AWS account id',
      'tenants[1].region: must be an AWS region such as us-east-1',
      'tenants[1].gpu.instanceTypes: must name at least one instance type',
      'tenants[1].gpu.maxVcpus: must be a positive integer',
      'tenants[1].domain.certificateArn: must be an ACM certificate ARN',
      'tenants[1].alarmEmail: must be an email address',
      'tenants[1].api.reservedConcurrency: must be a positive integer',
      expect.stringMatching(/^tenants\[1\]\.api\.logRetentionDays: must be one of 1, 3, 5, .*, 3653$/),
      'tenants[1]: Unrecognized key: "gpus"',
    ]);
  });

  it('takes allowed dataset folders only as S3 folders that no spelling can leave', () => {
    const [tenant] = loadTenants({ tenants: [{ ...valid, datasetUriPrefixes: ['s3://shared-datasets/questions/', 's3://b2c/'] }] });
    expect(tenant!.datasetUriPrefixes).toEqual(['s3://shared-datasets/questions/', 's3://b2c/']);
    const refused = ['file:///srv/data/', 's3://bucket/data', 's3://bucket/a/../b/', 's3://bucket/%2e%2e/', 's3://Bucket/x/'];
    expect(problems({ tenants: [{ ...valid, datasetUriPrefixes: refused }] })).toEqual(
      refused.map((_, index) => `tenants[0].datasetUriPrefixes[${index}]: must be an S3 folder ending in / such as s3://bucket/datasets/ (no . or .. segments)`),
    );
  });

  it('checks what one GPU job asks for against the environment, and the models it offers', () => {
    expect(
      problems({
        tenants: [
          {
            ...valid,
            gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 4, jobVcpus: 8, jobMemoryMiB: 512 },
            cpu: { maxVcpus: 0 },
            baseModels: [],
            samplerIdleMinutes: 0,
          },
        ],
      }),
    ).toEqual([
      'tenants[0].gpu.jobMemoryMiB: must be at least 1024 MiB',
      'tenants[0].gpu.jobVcpus: must not exceed maxVcpus (one job runs on one instance)',
      'tenants[0].cpu.maxVcpus: must be a positive integer',
      'tenants[0].baseModels: must name at least one model',
      'tenants[0].samplerIdleMinutes: must be at least 1',
    ]);
    expect(problems({ tenants: [{ ...valid, gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 4, jobVcpus: 8 } }] })).toEqual([
      'tenants[0].gpu.jobVcpus: must not exceed maxVcpus (one job runs on one instance)',
    ]);
  });

  it('wants the default base model among the base models offered', () => {
    const models = { baseModels: ['bakehouse/toy-instruct', 'Qwen/Qwen3-8B'] };
    expect(loadTenants({ tenants: [{ ...valid, ...models, defaultBaseModel: 'Qwen/Qwen3-8B' }] })[0]).toMatchObject({ defaultBaseModel: 'Qwen/Qwen3-8B' });
    expect(loadTenants({ tenants: [{ ...valid, defaultBaseModel: 'bakehouse/toy-instruct' }] })[0]).toMatchObject({ defaultBaseModel: 'bakehouse/toy-instruct' });
    expect(problems({ tenants: [{ ...valid, ...models, defaultBaseModel: 'Qwen/Qwen3-14B' }] })).toEqual([
      'tenants[0].defaultBaseModel: must be one of baseModels (bakehouse/toy-instruct, Qwen/Qwen3-8B)',
    ]);
    expect(problems({ tenants: [{ ...valid, defaultBaseModel: 'meta/llama' }] })).toEqual([
      expect.stringMatching(/^tenants\[0\]\.defaultBaseModel: must be one of baseModels \(bakehouse\/toy-instruct, .*, Qwen\/Qwen3-32B\)$/),
    ]);
    expect(problems({ tenants: [{ ...valid, ...models }] })).toEqual([
      'tenants[0].defaultBaseModel: must be set to one of baseModels (bakehouse/toy-instruct, Qwen/Qwen3-8B): the default, Qwen/Qwen3-32B, is not among them',
    ]);
  });

  it("wants the custom domain's certificate in the tenant's region (API Gateway's regional domains)", () => {
    const domain = (region: string) => ({ name: 'bread.example.com', certificateArn: `arn:aws:acm:${region}:123456789012:certificate/abc-123` });
    expect(loadTenants({ tenants: [{ ...valid, domain: domain('us-east-1') }] })[0]!.domain).toEqual(domain('us-east-1'));
    expect(problems({ tenants: [{ ...valid, domain: domain('eu-west-1') }] })).toEqual([
      "tenants[0].domain.certificateArn: must be in the tenant's region (us-east-1), not eu-west-1",
    ]);
  });

  it('reports missing fields and a missing tenants list', () => {
    expect(problems({ tenants: [{ tenantId: 'x' }] })).toEqual([
      'tenants[0].region: Invalid input: expected string, received undefined',
      'tenants[0].gpu: Invalid input: expected object, received undefined',
    ]);
    expect(problems({})).toEqual(['tenants: Invalid input: expected array, received undefined']);
    expect(problems({ tenants: [] })).toEqual(['tenants: must list at least one tenant']);
  });

  it('rejects two tenants with one id (they would share a stack name)', () => {
    expect(problems({ tenants: [valid, valid] })).toEqual(["tenants[1].tenantId: duplicates tenant 'acme-2'"]);
  });

  it('names the file it cannot parse', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "tenants": [ ');
    expect(() => readTenantsFile(file)).toThrow(`Invalid tenant config in ${file}:\n  - cannot read JSON: `);
  });
});
