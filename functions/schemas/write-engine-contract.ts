/** `npm run contract`: regenerates batch/contract/*.schema.json from the zod schemas. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { engineContractSchemas } from './job-spec.ts';

export const CONTRACT_DIR = join(import.meta.dirname, '..', '..', 'batch', 'contract');

export function renderContractFile(schema: Record<string, unknown>): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] === import.meta.filename) {
  for (const [file, schema] of Object.entries(engineContractSchemas())) {
    writeFileSync(join(CONTRACT_DIR, file), renderContractFile(schema));
    console.log(`wrote batch/contract/${file}`);
  }
}
