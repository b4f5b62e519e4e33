/**
 * The sampler at `sampler.base_url` = `{origin}/loops/samplers/{sampler_id}`, the serverless
 * flavour (loops-data-plane.md §9.4): `/sample` is accepted with 202 and polled like a trainer
 * op; a poll the client gives up on is cancelled; `/v1/models` lists what the sampler serves.
 */
import type { Context } from 'hono';
import { ConflictError, NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { SampleRequest } from '#schemas/loops.ts';
import { SampleResult } from '#schemas/relay.ts';
import type { AppEnv } from '../../env.ts';
import { validationErrorResponse } from '../../errors.ts';
import type { App } from '../../openapi.ts';
import { accepted, idempotencyKey, jsonBody, pollAnswer } from './operations.ts';
import { DEFAULT_POLL_HOLD_MS, relayUrlOf, type LoopsRouteOptions } from './options.ts';
import { completionJson, toCompletion, toSampleRequest } from './sample-wire.ts';
import { selectWeights } from './weight-selection.ts';

const SAMPLER = '/loops/samplers/:samplerId';

export function samplerPlaneRoutes(app: App, services: Services, options: LoopsRouteOptions): void {
  const { samplers, sampling, checkpoints } = services.training;
  const samplerOf = (c: Context<AppEnv>) => samplers.get(c.get('actor'), c.req.param('samplerId')!);

  app.post(`${SAMPLER}/sample`, async (c) => {
    const sampler = await samplerOf(c);
    const parsed = SampleRequest.safeParse(await jsonBody(c));
    if (!parsed.success) return validationErrorResponse(c, 'json', parsed.error);
    const request = toSampleRequest(parsed.data);
    const headers = { checkpointPath: c.req.header('x-checkpoint-path'), runId: c.req.header('x-run-id'), samplerId: c.req.header('x-sampler-id') };
    const weights = selectWeights(sampler, headers, parsed.data.lora);
    const submission = { idempotencyKey: idempotencyKey(c), ...weights, request, relayUrl: relayUrlOf(c, options) };
    const { operationId } = await sampling.submit(c.get('actor'), sampler.id, submission);
    return accepted(c, `/loops/samplers/${sampler.id}`, operationId);
  });

  app.get(`${SAMPLER}/operations/:operationId`, async (c) => {
    const sampler = await samplerOf(c);
    const operationId = c.req.param('operationId');
    const view = await sampling.poll(c.get('actor'), sampler.id, operationId, { holdMs: options.pollHoldMs ?? DEFAULT_POLL_HOLD_MS, signal: c.req.raw.signal });
    return pollAnswer(c, operationId, view, (done) => {
      const completion = toCompletion(operationId, sampler.baseModel, Math.floor(Date.now() / 1000), SampleResult.parse(done.result));
      return c.body(completionJson({ status: 'done', result: completion }), 200, { 'content-type': 'application/json' });
    });
  });

  /** The client gives up on a sample (its timeout, or a cancelled task): a queued one is dropped; a running one finishes (409). */
  app.post(`${SAMPLER}/operations/:operationId/cancel`, async (c) => {
    const sampler = await samplerOf(c);
    const operationId = c.req.param('operationId');
    const outcome = await sampling.cancel(c.get('actor'), sampler.id, operationId);
    if (outcome === undefined) throw new NotFoundError(`Operation '${operationId}' is unknown or its result has expired.`);
    if (outcome === 'running') throw new ConflictError(`Operation '${operationId}' is already running and will finish; its result stays available.`);
    return c.json({ status: 'cancelled' }, 200);
  });

  /** OpenAI's model list: the base model, and the adapters the sampler serves by default or its run has saved for sampling. */
  app.get(`${SAMPLER}/v1/models`, async (c) => {
    const sampler = await samplerOf(c);
    const saved = sampler.runId ? await checkpoints.list(c.get('actor'), { runId: sampler.runId }) : [];
    const adapters = [sampler.modelPath, ...saved.filter((checkpoint) => checkpoint.target === 'sampler').map((checkpoint) => checkpoint.path)];
    const model = (id: string, parent: string | null) => ({ id, object: 'model' as const, created: Math.floor(Date.parse(sampler.createdAt) / 1000), owned_by: sampler.userId, parent });
    return c.json({
      object: 'list',
      data: [model(sampler.baseModel, null), ...adapters.filter((path): path is string => path !== null).map((path) => model(path, sampler.baseModel))],
    });
  });
}
