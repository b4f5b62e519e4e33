/**
 * The API Lambda as deployed: bundled with esbuild (as the CDK construct does), its size, and
 * the time a fresh Node process takes to import it (the module-loading part of a cold start).
 * Baseline: importing an empty module in the same kind of fresh process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { round } from './stats.ts';

const RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 10);

/** What the stack sets on the API function; nothing is called at import time. */
const LAMBDA_ENV = {
  AWS_REGION: 'us-east-1',
  TABLE_NAME: 'bench',
  ARTIFACT_BUCKET: 'bench-artifacts',
  JOB_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bench-jobs',
  BATCH_GPU_QUEUE: 'gpu',
  BATCH_CPU_QUEUE: 'cpu',
  BATCH_GPU_JOB_DEFINITION: 'engine-gpu',
  BATCH_CPU_JOB_DEFINITION: 'engine-cpu',
  ADMIN_KEY_SECRET_ARN: '',
};

export async function benchLambdaBundle(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'bakehouse-bundle-'));
  const outfile = join(dir, 'index.mjs');
  await build({
    entryPoints: ['functions/handlers/api.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
    outfile,
    logLevel: 'error',
  });
  const empty = join(dir, 'empty.mjs');
  writeFileSync(empty, 'export {};\n');

  const importMs = (file: string) => {
    const samples = Array.from({ length: RUNS }, () =>
      Number(
        execFileSync(
          process.execPath,
          ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(file)}); console.log(performance.now() - t);`],
          { env: { ...process.env, ...LAMBDA_ENV }, encoding: 'utf8' },
        ).trim(),
      ),
    ).sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)]!;
  };
  const bundleImport = importMs(outfile);
  const baselineImport = importMs(empty);
  const bytes = statSync(outfile).size;
  const gzipBytes = gzipSync(readFileSync(outfile)).length;
  rmSync(dir, { recursive: true, force: true });
  return {
    bundleBytes: bytes,
    bundleKiB: round(bytes / 1024),
    gzipKiB: round(gzipBytes / 1024),
    importMedianMs: round(bundleImport, 1),
    emptyModuleImportMedianMs: round(baselineImport, 2),
    importVsEmpty: round(bundleImport / baselineImport, 1),
    runs: RUNS,
  };
}
