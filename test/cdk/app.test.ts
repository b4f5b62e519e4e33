import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
// The CLI hands cdk.json's context (the feature flags) to the app in CDK_CONTEXT_JSON.
const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> };
const dir = mkdtempSync(join(tmpdir(), 'bakehouse-app-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs bin/app.ts as `cdk synth` does, on a tenants file of our own. */
function synth(tenants: unknown, outdir: string) {
  const file = join(dir, `${outdir}.json`);
  writeFileSync(file, JSON.stringify(tenants));
  return run(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
    env: { ...process.env, BAKEHOUSE_TENANTS_FILE: file, CDK_OUTDIR: join(dir, outdir), CDK_CONTEXT_JSON: JSON.stringify(cdkJson.context) },
  });
}

const gpu = { instanceTypes: ['g6e.xlarge'], maxVcpus: 8 };

describe('bin/app.ts', () => {
  it('builds one stack per tenant in BAKEHOUSE_TENANTS_FILE', async () => {
    await synth(
      {
        tenants: [
          { tenantId: 'alpha', account: '111111111111', region: 'us-east-1', gpu },
          { tenantId: 'beta', region: 'eu-central-1', gpu, deletionProtection: false },
        ],
      },
      'two',
    );
    const manifest = JSON.parse(readFileSync(join(dir, 'two', 'manifest.json'), 'utf8')) as {
      artifacts: Record<string, { type: string; environment?: string; properties?: { stackName?: string } }>;
    };
    // The manifest omits stackName where it equals the artifact id.
    const stacks = Object.entries(manifest.artifacts)
      .filter(([, artifact]) => artifact.type === 'aws:cloudformation:stack')
      .map(([id, artifact]) => [artifact.properties?.stackName ?? id, artifact.environment]);
    expect(stacks).toEqual([
      ['Bakehouse-alpha', 'aws://111111111111/us-east-1'],
      ['Bakehouse-beta', 'aws://unknown-account/eu-central-1'],
    ]);
  }, 120_000);

  it('fails with the bad field named before building anything', async () => {
    const failure = await synth({ tenants: [{ tenantId: 'Not Valid', region: 'us-east-1', gpu }] }, 'bad').catch(
      (error: Error & { stderr: string }) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as { stderr: string }).stderr).toContain('tenants[0].tenantId: must be 1-32 lowercase letters');
  }, 60_000);
});
