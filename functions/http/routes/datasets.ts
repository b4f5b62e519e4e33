import { createRoute } from '@hono/zod-openapi';
import type { DatasetFormat } from '#core/dataset-content.ts';
import { DATASET_MAX_BYTES } from '#core/datasets.ts';
import { UnsupportedMediaTypeError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { DeleteResponse } from '#schemas/bread.ts';
import { DatasetBody, DatasetList, DatasetPath, DatasetResponse } from '#schemas/datasets.ts';
import { bearer, errors, json, type App } from '../openapi.ts';

const tags = ['Datasets'];
const base = '/v1/datasets';

/** The upload's content type names its format, the way the engine tells files apart by extension. */
const FORMATS: Record<string, DatasetFormat> = { 'application/x-ndjson': 'jsonl', 'application/jsonl': 'jsonl', 'text/csv': 'csv' };

/** The caller's own question files for `from_dataset` generators (`dataset: "<name>"`). */
export function datasetRoutes(app: App, { datasets }: Services): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: base,
      tags,
      security: bearer,
      summary: 'List your uploaded datasets',
      responses: { 200: json(DatasetList, 'Your datasets, by name') },
    }),
    async (c) => c.json({ datasets: await datasets.list(c.get('actor')) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: `${base}/{dataset_name}`,
      tags,
      security: bearer,
      summary: 'Upload a dataset (immutable)',
      description:
        `A question file for \`from_dataset\` generators, at most ${DATASET_MAX_BYTES} bytes (${DATASET_MAX_BYTES / 1024 / 1024} MiB): ` +
        'JSONL sent as `application/x-ndjson` (or `application/jsonl`), or CSV sent as `text/csv`. A target uses it as `dataset: "<name>"`. Names of shipped datasets are reserved. ' +
        'Only you can see or use it. The same content again is a 200; other content under the same name a 409.',
      request: {
        params: DatasetPath,
        body: {
          required: true,
          content: { 'application/x-ndjson': { schema: DatasetBody }, 'text/csv': { schema: DatasetBody } },
        },
      },
      responses: {
        201: json(DatasetResponse, 'Uploaded'),
        200: json(DatasetResponse, 'The same content was already uploaded under this name'),
        ...errors(409, 413, 415, 422),
      },
    }),
    async (c) => {
      const format = FORMATS[(c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase()];
      if (!format) throw new UnsupportedMediaTypeError('Send the dataset as application/x-ndjson (JSONL) or text/csv (CSV).');
      const bytes = new Uint8Array(await c.req.arrayBuffer());
      const { created, dataset } = await datasets.upload(c.get('actor'), c.req.valid('param').dataset_name, bytes, format);
      return c.json(dataset, created ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${base}/{dataset_name}`,
      tags,
      security: bearer,
      summary: 'Get a dataset’s metadata',
      request: { params: DatasetPath },
      responses: { 200: json(DatasetResponse, 'The dataset'), ...errors(404, 422) },
    }),
    async (c) => c.json(await datasets.get(c.get('actor'), c.req.valid('param').dataset_name), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: `${base}/{dataset_name}`,
      tags,
      security: bearer,
      summary: 'Delete a dataset',
      description: 'Refused with 409, naming them, while targets use the dataset: their stim jobs read it.',
      request: { params: DatasetPath },
      responses: { 200: json(DeleteResponse, 'Deleted'), ...errors(404, 409, 422) },
    }),
    async (c) => {
      await datasets.delete(c.get('actor'), c.req.valid('param').dataset_name);
      return c.json({ message: 'Dataset deleted successfully' }, 200);
    },
  );
}
