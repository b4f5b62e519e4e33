/**
 * Tinker sampling (loops-api.md §2.10, §2.14): sampling sessions are samplers of the training
 * service named `{session_id}:sample:{n}`, on a base model or a `sampler_weights` checkpoint;
 * `asample` queues a token-level sample on the one sampler engine and answers with its future and
 * one `sample_sequence_ids` entry per sample.
 */
import type { Context } from 'hono';
import { ValidationError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { CreateSamplingSessionRequest, SampleRequest } from '#schemas/tinker.ts';
import type { AppEnv } from '../../env.ts';
import type { App } from '../../openapi.ts';
import { requestIdOf } from './futures.ts';
import { API, readJson, relayUrlOf, retryKey, type TinkerRouteOptions } from './requests.ts';
import { samplerOfSession, samplingSessionIdOf, tinkerPathOf } from './views.ts';
import { toSampleRequest } from './wire.ts';

export function samplingRoutes(app: App, services: Services, options: TinkerRouteOptions): void {
  const training = services.training;
  const actorOf = (c: Context<AppEnv>) => c.get('actor');

  app.post(`${API}/create_sampling_session`, async (c) => {
    const body = await readJson(c, CreateSamplingSessionRequest);
    if (Boolean(body.base_model) === Boolean(body.model_path)) throw new ValidationError('Send exactly one of base_model and model_path.');
    const alias = `${body.session_id}:sample:${body.sampling_session_seq_id}`;
    const from = body.model_path ? { modelPath: body.model_path } : { baseModel: body.base_model as string };
    const sampler = await training.samplers.createStandalone(actorOf(c), { sessionId: body.session_id, alias, ...from });
    return c.json({ sampling_session_id: samplingSessionIdOf(sampler), type: 'create_sampling_session' });
  });

  /** Deduplicated by (sampling session, seq_id), which the SDK numbers per sampling client. */
  app.post(`${API}/asample`, async (c) => {
    const body = await readJson(c, SampleRequest);
    if (!body.sampling_session_id) throw new ValidationError('sampling_session_id: create a sampling session with create_sampling_session and sample through it');
    const sampler = await samplerOfSession(training, actorOf(c), body.sampling_session_id);
    const key = body.seq_id == null ? retryKey(c) : `${samplingSessionIdOf(sampler)}:${body.seq_id}`;
    const { operationId } = await training.sampling.submit(actorOf(c), sampler.id, {
      idempotencyKey: key,
      checkpointPath: null,
      runId: null,
      request: toSampleRequest(body),
      relayUrl: relayUrlOf(c, options),
    });
    return c.json({
      request_id: requestIdOf({ kind: 'sample', sampler: sampler.id, op: operationId }),
      sample_sequence_ids: Array.from({ length: body.num_samples }, (_, index) => `${operationId}:${index}`),
    });
  });

  app.get(`${API}/samplers/:samplerId`, async (c) => {
    const sampler = await samplerOfSession(training, actorOf(c), c.req.param('samplerId'));
    const modelPath = sampler.modelPath && (await tinkerPathOf(training, actorOf(c), sampler.modelPath));
    return c.json({ sampler_id: samplingSessionIdOf(sampler), base_model: sampler.baseModel, ...(modelPath ? { model_path: modelPath } : {}) });
  });
}
