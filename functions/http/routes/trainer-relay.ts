import type { Context } from 'hono';
import type { z } from 'zod';
import { UnauthorizedError } from '#core/errors.ts';
import type { JobRecord } from '#core/jobs/job-records.ts';
import type { Services } from '#core/services.ts';
import { TrainerRetiredError } from '#core/training/trainer-pool.ts';
import type { Item } from '#ports/store.ts';
import { TrainerNextRequest, TrainerOperationResult, TrainerReady } from '#schemas/trainer.ts';
import type { AppEnv } from '../env.ts';
import { errorResponse, validationErrorResponse } from '../errors.ts';
import type { App } from '../openapi.ts';

const TRAINER_RESULT = /^\/v1\/relay\/trainers\/[^/]+\/operations\/[^/]+\/result$/;

/** A trainer's result post, which may be as large as the data-plane body it answers. */
export const isTrainerResult = (path: string) => TRAINER_RESULT.test(path);

/**
 * The trainer side of the relay (functions/schemas/trainer.ts); engine-facing, authenticated by
 * the trainer's relay token, not in the OpenAPI. 410 tells a trainer that no longer serves its
 * run to stop.
 */
export function trainerRelayRoutes(app: App, services: Services): void {
  app.post('/v1/relay/trainers/:jobId/ready', async (c) =>
    asTrainer(c, services, TrainerReady, async (job, run, ready) => {
      await services.training.relay.ready(job, run, ready);
      return c.json({});
    }),
  );

  app.post('/v1/relay/trainers/:jobId/next', async (c) => {
    const abort = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => abort.abort());
    return asTrainer(c, services, TrainerNextRequest, async (job, run, { wait_s }) =>
      c.json(await services.training.relay.next(job, run.id as string, wait_s, abort.signal)),
    );
  });

  app.post('/v1/relay/trainers/:jobId/operations/:operationId/result', async (c) =>
    asTrainer(c, services, TrainerOperationResult, async (job, run, result) => {
      await services.training.relay.postResult(job, run.id as string, c.req.param('operationId'), result);
      return c.json({});
    }),
  );
}

async function asTrainer<T extends z.ZodType>(
  c: Context<AppEnv>,
  services: Services,
  schema: T,
  handle: (job: JobRecord, run: Item, body: z.infer<T>) => Promise<Response>,
): Promise<Response> {
  const token = c.req.header('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1];
  const jobId = Number(c.req.param('jobId'));
  if (!token || !Number.isSafeInteger(jobId)) throw new UnauthorizedError('Invalid relay token');
  try {
    const { job, run } = await services.training.trainers.authorize(jobId, token);
    const body = schema.safeParse(await c.req.json().catch(() => undefined));
    if (!body.success) return validationErrorResponse(c, 'json', body.error);
    return await handle(job, run, body.data);
  } catch (error) {
    if (error instanceof TrainerRetiredError) return errorResponse(c, 410, { message: error.message, code: 'TRAINER_RETIRED' });
    throw error;
  }
}
