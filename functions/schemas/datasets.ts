/**
 * Uploaded datasets for `from_dataset` generators (functions/core/datasets.ts): the bodies and
 * answers of `/v1/datasets`.
 */
import { z } from 'zod';
import { nameSchema } from './names.ts';

export const DatasetPath = z.object({
  dataset_name: nameSchema('target').meta({ description: "Letters, digits, '_', '.' and '-'; not '.', '..', 'batch' or a shipped dataset's name" }),
});

export const DatasetResponse = z
  .object({
    dataset_name: z.string(),
    format: z.enum(['jsonl', 'csv']),
    size: z.number().int().meta({ description: 'Bytes' }),
    lines: z.number().int().meta({ description: 'Questions in the file' }),
    created_at: z.string(),
  })
  .meta({ id: 'DatasetResponse' });

export const DatasetList = z.object({ datasets: z.array(DatasetResponse) }).meta({ id: 'DatasetList' });

/** The upload body: JSONL unless sent as `text/csv`. */
export const DatasetBody = z.string().meta({
  description:
    'One JSON string or object with a `question`, `prompt` or `text` field per line (JSONL), or CSV with a header naming one of those columns.',
});
