/**
 * `npm run bench`: runs every benchmark and records the results in bench/results/ (JSON, with
 * the machine they ran on). Figures are ratios against a baseline from the same run where one
 * applies; the machine is shared, so absolute numbers move between runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { benchHttp } from './http.ts';
import { benchLambdaBundle } from './lambda-bundle.ts';
import { benchJobStart } from './job-start.ts';
import { benchPagination } from './pagination.ts';

const results = {
  recorded_at: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  http_in_process_sqlite: await benchHttp(),
  api_lambda_bundle: await benchLambdaBundle(),
  output_pagination: await benchPagination(),
  job_start_embedded: await benchJobStart(),
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/api.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
