/**
 * `retrieve_future` (loops-api.md §2.5): held until the result or 30 s, then `try_again`; an
 * operation failure is 200 `{error, category}`; a result is JSON, except forward/backward and
 * sample results for a client whose `Accept` names `application/x-protobuf` (0.19+), which get
 * the protobuf form 0.25+ insists on. Results outlive restarts: the service keeps them a day.
 */
import type { Context } from 'hono';
import type { Actor } from '#core/actor.ts';
import { NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { parseCheckpointPath, tinkerCheckpointPath } from '#core/training/checkpoint-paths.ts';
import type { OperationView } from '#core/training/model.ts';
import { SampleResult } from '#schemas/relay.ts';
import { RetrieveFutureRequest } from '#schemas/tinker.ts';
import type { AppEnv } from '../../env.ts';
import type { App } from '../../openapi.ts';
import { futureError, parseRequestId, tryAgain, type FutureRef } from './futures.ts';
import { encodeForwardBackwardOutput, encodeSampleResponse, PROTOBUF_MEDIA_TYPE } from './proto/codec.ts';
import { API, DEFAULT_POLL_HOLD_MS, readJson, type TinkerRouteOptions } from './requests.ts';
import { samplingSessionIdOf } from './views.ts';
import { toForwardBackwardOutput, toJsonForwardBackwardOutput, toJsonSampleResponse, toOptimStepResult } from './wire.ts';

type Done = Extract<OperationView, { status: 'done' }>;

const acceptsProtobuf = (accept: string | undefined) => (accept ?? '').toLowerCase().includes(PROTOBUF_MEDIA_TYPE);

const protobuf = (c: Context, bytes: Uint8Array) => c.body(new Uint8Array(bytes), 200, { 'content-type': PROTOBUF_MEDIA_TYPE });

export function futureRoutes(app: App, services: Services, options: TinkerRouteOptions): void {
  const training = services.training;

  /** The `tinker://` path of what a save wrote, under the model id the client knows. */
  const savedPath = (model: string, done: Done) => {
    const written = typeof done.result.path === 'string' ? parseCheckpointPath(done.result.path) : undefined;
    if (!written) throw new Error('A save result names no checkpoint path');
    return tinkerCheckpointPath(model, written);
  };

  /** A done training operation as the SDK's result type for the call that submitted it. */
  const trainingResult = async (c: Context<AppEnv>, actor: Actor, ref: Extract<FutureRef, { kind: 'op' }>, done: Done) => {
    switch (ref.answer) {
      case 'create_model':
        return c.json({ model_id: ref.model, type: 'create_model' });
      case 'forward': {
        const output = toForwardBackwardOutput(done.result);
        if (acceptsProtobuf(c.req.header('accept'))) return protobuf(c, encodeForwardBackwardOutput(output));
        return c.json(toJsonForwardBackwardOutput(output));
      }
      case 'optim_step':
        return c.json(toOptimStepResult(done.result));
      case 'save_weights':
        return c.json({ path: savedPath(ref.model, done), type: 'save_weights' });
      case 'save_weights_for_sampler': {
        const path = savedPath(ref.model, done);
        if (ref.samplingSessionSeq === undefined) return c.json({ path, type: 'save_weights_for_sampler' });
        // The sampling session behind an unnamed save: made once, found again on a repeated retrieve.
        const run = await training.runs.get(actor, ref.run);
        const sampler = await training.samplers.createStandalone(actor, { sessionId: run.sessionId, modelPath: path, alias: `${run.sessionId}:sample:${ref.samplingSessionSeq}` });
        // No `path` for an unnamed save: tinker 0.16.1 asserts it is absent, later clients read only the session.
        return c.json({ sampling_session_id: samplingSessionIdOf(sampler), type: 'save_weights_for_sampler' });
      }
      case 'save_weights_external': {
        const files = (done.result.files ?? []) as { size_bytes: number }[];
        return c.json({ path: savedPath(ref.model, done), size_bytes: files.reduce((sum, file) => sum + file.size_bytes, 0), type: 'save_weights_external' });
      }
      case 'load_weights':
        return c.json({ model_id: ref.model, type: 'load_weights' });
    }
  };

  app.post(`${API}/retrieve_future`, async (c) => {
    const requestId = (await readJson(c, RetrieveFutureRequest)).request_id;
    const ref = parseRequestId(requestId);
    const actor = c.get('actor');
    if (ref.kind === 'unloaded') return c.json({ model_id: ref.model, type: 'unload_model' });
    const hold = { holdMs: options.pollHoldMs ?? DEFAULT_POLL_HOLD_MS, signal: c.req.raw.signal };
    const view = ref.kind === 'sample' ? await training.sampling.poll(actor, ref.sampler, ref.op, hold) : await training.operations.poll(actor, ref.run, ref.op, hold);
    if (!view) throw new NotFoundError(`Future '${requestId}' is unknown or its result has expired (results are kept for a day).`);
    if (view.status === 'pending') return c.json(tryAgain(requestId));
    if (view.status === 'error') return c.json(futureError(view.error, view.errorClass));
    if (ref.kind === 'op') return trainingResult(c, actor, ref, view);
    const result = SampleResult.parse(view.result);
    if (acceptsProtobuf(c.req.header('accept'))) return protobuf(c, encodeSampleResponse(result));
    return c.json(toJsonSampleResponse(result));
  });
}
