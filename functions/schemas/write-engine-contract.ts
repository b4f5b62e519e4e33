/** `npm run contract`: regenerates batch/contract/*.schema.json from the zod schemas. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { JobProgress, JobResult, JobSpec, MetricsRow } from './job-spec.ts';
import { RelayChunk, RelayChunkAck, RelayNextRequest, RelayNextResponse } from './relay.ts';
import { TrainerNextResponse } from './trainer.ts';

export const CONTRACT_DIR = join(import.meta.dirname, '..', '..', 'batch', 'contract');

/** The engine contract as JSON Schema files under batch/contract/, keyed by file name. */
export function engineContractSchemas(): Record<string, Record<string, unknown>> {
  const files = {
    'job-spec.schema.json': JobSpec,
    'job-progress.schema.json': JobProgress,
    'metrics-row.schema.json': MetricsRow,
    'job-result.schema.json': JobResult,
    'relay-next-request.schema.json': RelayNextRequest,
    'relay-next-response.schema.json': RelayNextResponse,
    'relay-chunk.schema.json': RelayChunk,
    'relay-chunk-ack.schema.json': RelayChunkAck,
    'trainer-next-response.schema.json': TrainerNextResponse,
  };
  return Object.fromEntries(
    Object.entries(files).map(([file, schema]) => [file, z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' })]),
  );
}

export function renderContractFile(schema: Record<string, unknown>): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] === import.meta.filename) {
  for (const [file, schema] of Object.entries(engineContractSchemas())) {
    writeFileSync(join(CONTRACT_DIR, file), renderContractFile(schema));
    console.log(`wrote batch/contract/${file}`);
  }
}
