import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobSpec } from '#schemas/job-spec.ts';
import { CONTRACT_DIR, engineContractSchemas, renderContractFile } from '#schemas/write-engine-contract.ts';

describe('engine contract', () => {
  it.each(Object.entries(engineContractSchemas()))('batch/contract/%s matches the zod schemas (run `npm run contract`)', (file, schema) => {
    expect(readFileSync(join(CONTRACT_DIR, file), 'utf8')).toBe(renderContractFile(schema));
  });

  it('refuses a spec whose output prefix is not a URI prefix', () => {
    const result = JobSpec.safeParse({ version: 1, job_id: 1, kind: 'rollout', output_uri: '/tmp/out', rollout: {} });
    expect(result.success).toBe(false);
  });
});
