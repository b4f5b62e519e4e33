/**
 * A run's loss per optimizer step: Bakehouse's own addition to the Loops control plane (the
 * Loops API has no such route), in its error shape, for the console and any client that charts
 * a run.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Services } from '#core/services.ts';
import { RunMetricsQuery, RunMetricsResponse } from '#schemas/loops.ts';
import { bearer, json, type App } from '../../openapi.ts';
import { loopsErrors } from './options.ts';

export function runMetricsRoutes(app: App, services: Services): void {
  const training = services.training;
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/runs/{run_id}/metrics',
      tags: ['Loops'],
      security: bearer,
      summary: 'Loss per step of a run (Bakehouse extension)',
      description:
        'One row per optim_step the run’s trainer answered, in order: the token-weighted mean loss of the forward_backward calls since the step before, ' +
        'the learning rate, the gradient norm and the tokens. Not part of the Loops API. Paged: follow next_page_token until it is null.',
      request: { params: z.object({ run_id: z.string().min(1) }), query: RunMetricsQuery },
      responses: { 200: json(RunMetricsResponse, 'A page of steps'), ...loopsErrors(400, 404) },
    }),
    async (c) => {
      const runId = c.req.valid('param').run_id;
      const { page_size, page_token } = c.req.valid('query');
      await training.runs.find(c.get('actor'), runId);
      const page = await training.metrics.page(runId, { limit: page_size, cursor: page_token });
      return c.json(
        {
          metrics: page.metrics.map((row) => ({ step: row.step, loss: row.loss, learning_rate: row.learningRate, grad_norm: row.gradNorm, tokens: row.tokens, time: row.time })),
          next_page_token: page.cursor ?? null,
        },
        200,
      );
    },
  );
}
