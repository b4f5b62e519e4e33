import type { Context } from 'hono';
import type { z } from 'zod';
import { SamplerRetiredError } from '#core/chat/sampler-pool.ts';
import { UnauthorizedError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { JobRecord } from '#core/jobs/job-records.ts';
import { RelayChunk, RelayNextRequest } from '#schemas/relay.ts';
import type { AppEnv } from '../env.ts';
import { errorResponse, validationErrorResponse } from '../errors.ts';
import type { App } from '../openapi.ts';

/** Paths of the relay routes, which authenticate with a sampler's relay token instead of an API key. */
export const RELAY_PATH_PREFIX = '/v1/relay/';

/** The sampler side of the relay (functions/schemas/relay.ts); engine-facing, not in the OpenAPI. */
export function relayRoutes(app: App, services: Services): void {
  app.post('/v1/relay/samplers/:jobId/next', async (c) => {
    const abort = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => abort.abort());
    return asSampler(c, services, RelayNextRequest, async (job, { wait_s, max }) => {
      const requests = await services.relay.next(job.owner.name, job.job_id, { waitS: wait_s, max }, abort.signal);
      return c.json({ requests });
    });
  });

  app.post('/v1/relay/samplers/:jobId/requests/:requestId/chunks', async (c) =>
    asSampler(c, services, RelayChunk, async (job, chunk) => c.json(await services.relay.postChunk(c.req.param('requestId'), job.job_id, chunk))),
  );
}

async function asSampler<T extends z.ZodType>(
  c: Context<AppEnv>,
  services: Services,
  schema: T,
  handle: (job: JobRecord, body: z.infer<T>) => Promise<Response>,
): Promise<Response> {
  const token = c.req.header('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1];
  const jobId = Number(c.req.param('jobId'));
  if (!token || !Number.isSafeInteger(jobId)) throw new UnauthorizedError('Invalid relay token');
  let job: JobRecord;
  try {
    job = await services.samplers.authorize(jobId, token);
  } catch (error) {
    if (error instanceof SamplerRetiredError) return errorResponse(c, 410, { message: error.message, code: 'SAMPLER_RETIRED' });
    throw error;
  }
  const body = schema.safeParse(await c.req.json().catch(() => undefined));
  if (!body.success) return validationErrorResponse(c, 'json', body.error);
  return handle(job, body.data);
}
