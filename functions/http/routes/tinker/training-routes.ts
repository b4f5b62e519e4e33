/**
 * A Tinker model's routes (loops-api.md §2.6, §2.14): `create_model` makes a run under the model id
 * `{session_id}:train:{model_seq_id}` (protocol 'tinker', listed with every run), and each training
 * call becomes one operation of that run. Operations carry the client's `seq_id`, so they run in
 * its order whatever order they arrive in, and a retry with the same (model, seq_id) is the same
 * operation.
 */
import type { Context } from 'hono';
import type { Actor } from '#core/actor.ts';
import { IdempotencyConflictError, ValidationError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { SubmittedOperation, TrainingRun } from '#core/training/model.ts';
import {
  AdamParams,
  CreateModelRequest,
  ForwardBackwardRequest,
  ForwardRequest,
  LoadWeightsRequest,
  ModelRequest,
  OptimStepRequest,
  SaveWeightsExternalRequest,
  SaveWeightsForSamplerRequest,
  SaveWeightsRequest,
  WeightsInfoRequest,
} from '#schemas/tinker.ts';
import type { AppEnv } from '../../env.ts';
import type { App } from '../../openapi.ts';
import { requestIdOf, type TrainingAnswer } from './futures.ts';
import { decodeForwardBackwardRequest, PROTOBUF_MEDIA_TYPE } from './proto/codec.ts';
import { API, readJson, relayUrlOf, retryKey, type TinkerRouteOptions } from './requests.ts';
import { modelIdOf, runOfModel } from './views.ts';
import { jsonForward, toForward } from './wire.ts';

/** Runs made through Tinker scale to zero after Loops' default idle time. */
const SCALE_DOWN_DELAY_SECONDS = 3600;

/** The keys of the operations a model starts with, which carry no `seq_id`. */
const CREATE_KEY = 'create_model';
const CREATE_VIA_LOAD_KEY = 'load_weights';

const modelIdFor = (sessionId: string, modelSeqId: number) => `${sessionId}:train:${modelSeqId}`;

/** `optimizer_config` (0.38): only AdamW is trained here. */
function assertAdamW(config: { type: string } | null | undefined): void {
  if (config && config.type !== 'adamw') throw new ValidationError(`optimizer_config.type: '${config.type}' is not supported; use adamw`);
}

export function trainingRoutes(app: App, services: Services, options: TinkerRouteOptions): void {
  const training = services.training;
  const actorOf = (c: Context<AppEnv>): Actor => c.get('actor');

  /** A run for the model id, made once per id: a retried create answers with the first run. */
  const createRun = (c: Context<AppEnv>, input: { sessionId: string; modelSeqId: number; baseModel: string; loraRank: number; seed: number | null; fromPath: string | null }) =>
    training.runs.create(actorOf(c), {
      sessionId: input.sessionId,
      protocol: 'tinker',
      baseModel: input.baseModel,
      loraRank: input.loraRank,
      seed: input.seed,
      maxSeqLen: null,
      name: null,
      availabilityModel: 'dedicated',
      scaleDownDelaySeconds: SCALE_DOWN_DELAY_SECONDS,
      fromPath: input.fromPath,
      relayUrl: relayUrlOf(c, options),
      alias: modelIdFor(input.sessionId, input.modelSeqId),
    });

  /** Submits the operation, in `seq_id` order when the client numbered it, and answers with its future. */
  const submit = async (
    c: Context<AppEnv>,
    run: TrainingRun,
    seqId: number | null | undefined,
    operation: SubmittedOperation,
    answer: TrainingAnswer,
    extra: { samplingSessionSeq?: number } = {},
  ) => {
    const modelId = modelIdOf(run);
    const inOrder = async (clientSeq: number) => {
      try {
        return await training.operations.submitInOrder(actorOf(c), run.id, { idempotencyKey: `${modelId}:${clientSeq}`, operation, clientSeq });
      } catch (error) {
        // A client bug, not a race: a 409 the SDK would retry for minutes.
        if (error instanceof IdempotencyConflictError) throw new ValidationError(`seq_id ${clientSeq} was already used for a different operation on model '${modelId}'; number each new operation after the last one.`);
        throw error;
      }
    };
    const { operationId } = seqId == null ? await training.operations.submit(actorOf(c), run.id, { idempotencyKey: retryKey(c), operation }) : await inOrder(seqId);
    return c.json({ request_id: requestIdOf({ kind: 'op', run: run.id, op: operationId, answer, model: modelId, ...extra }), model_id: modelId });
  };

  /** The first operation of a new model: its trainer has started and reset the adapter once it is answered. */
  const init = (c: Context<AppEnv>, run: TrainingRun) =>
    training.operations.submit(actorOf(c), run.id, { idempotencyKey: CREATE_KEY, operation: { kind: 'init', lora_rank: run.loraRank } });

  app.post(`${API}/create_model`, async (c) => {
    const body = await readJson(c, CreateModelRequest);
    assertAdamW(body.optimizer_config);
    const lora = body.lora_config ?? { rank: 32, seed: null, train_unembed: true, train_mlp: true, train_attn: true };
    if (!lora.train_attn && !lora.train_mlp && !lora.train_unembed) {
      throw new ValidationError('lora_config: at least one of train_attn, train_mlp and train_unembed must be true');
    }
    const run = await createRun(c, { sessionId: body.session_id, modelSeqId: body.model_seq_id, baseModel: body.base_model, loraRank: lora.rank, seed: lora.seed ?? null, fromPath: null });
    const { operationId } = await init(c, run);
    return c.json({ request_id: requestIdOf({ kind: 'op', run: run.id, op: operationId, answer: 'create_model', model: modelIdOf(run) }), model_id: modelIdOf(run) });
  });

  /** Synchronous; 0.38 validates it strictly and loads the tokenizer by `model_data.model_name`, so that is always set. */
  app.post(`${API}/get_info`, async (c) => {
    const run = await runOfModel(training, actorOf(c), (await readJson(c, ModelRequest)).model_id);
    return c.json({
      model_id: modelIdOf(run),
      model_data: { model_name: run.baseModel, tokenizer_id: run.baseModel },
      is_lora: true,
      lora_rank: run.loraRank,
      model_name: run.baseModel,
      type: 'get_info',
    });
  });

  app.post(`${API}/unload_model`, async (c) => {
    const run = await runOfModel(training, actorOf(c), (await readJson(c, ModelRequest)).model_id);
    await training.runs.deactivate(actorOf(c), run.id);
    return c.json({ request_id: requestIdOf({ kind: 'unloaded', model: modelIdOf(run) }), model_id: modelIdOf(run) });
  });

  /** Protobuf (≥ 0.25, and 0.22.3+ when negotiated; optionally zstd) or JSON; `forward_only` makes it a forward. */
  app.post(`${API}/forward_backward`, async (c) => {
    if ((c.req.header('content-type') ?? '').toLowerCase().startsWith(PROTOBUF_MEDIA_TYPE)) {
      const body = decodeForwardBackwardRequest(c.get('rawBody') ?? new Uint8Array(), c.req.header('content-encoding'));
      const run = await runOfModel(training, actorOf(c), body.model_id);
      // Protobuf cannot carry a null seq_id; it arrives as 0.
      return submit(c, run, body.seq_id || null, toForward(body, !body.forward_only), 'forward');
    }
    const body = await readJson(c, ForwardBackwardRequest);
    const run = await runOfModel(training, actorOf(c), body.model_id);
    return submit(c, run, body.seq_id, jsonForward(body.forward_backward_input, true), 'forward');
  });

  /** ≤ 0.24 only: later SDKs send a forward-only protobuf forward_backward. */
  app.post(`${API}/forward`, async (c) => {
    const body = await readJson(c, ForwardRequest);
    const run = await runOfModel(training, actorOf(c), body.model_id);
    return submit(c, run, body.seq_id, jsonForward(body.forward_input, false), 'forward');
  });

  app.post(`${API}/optim_step`, async (c) => {
    const body = await readJson(c, OptimStepRequest);
    if (body.optimizer_params && body.optimizer_params.type !== 'adamw') {
      throw new ValidationError(`optimizer_params.type: '${body.optimizer_params.type}' is not supported; send adam_params`);
    }
    const run = await runOfModel(training, actorOf(c), body.model_id);
    return submit(c, run, body.seq_id, { kind: 'optim_step', adam: body.adam_params ?? AdamParams.parse({}) }, 'optim_step');
  });

  app.post(`${API}/save_weights`, async (c) => {
    const body = await readJson(c, SaveWeightsRequest);
    if (!body.path) throw new ValidationError('path: name the checkpoint to save (letters, digits, ".", "_" or "-")');
    const run = await runOfModel(training, actorOf(c), body.model_id);
    return submit(c, run, body.seq_id, { kind: 'save', what: 'state', publish: false, name: body.path, ttlSeconds: body.ttl_seconds ?? null }, 'save_weights');
  });

  /**
   * 0.38's export (`tinker checkpoint download` goes through it): the run's LoRA adapter in PEFT's
   * layout (adapter_model.safetensors, adapter_config.json) as `external_weights/<path>`, which
   * `external_weights_urls` hands out. An adapter, not merged full weights: that is what a LoRA
   * run trains, and what the CLI's push-hf expects of a download.
   */
  app.post(`${API}/save_weights_external`, async (c) => {
    const body = await readJson(c, SaveWeightsExternalRequest);
    const run = await runOfModel(training, actorOf(c), body.model_id);
    return submit(c, run, body.seq_id, { kind: 'save', what: 'external', publish: false, name: body.path, ttlSeconds: body.ttl_seconds ?? null }, 'save_weights_external');
  });

  /**
   * With a name, a kept `sampler_weights` checkpoint; without one (`save_weights_and_get_sampling_client`)
   * an ephemeral `ephemeral_<n>` one, under the retention rule, whose result names the sampling
   * session `{session_id}:sample:<n>` made for it. `kind: inflight` is taken as a snapshot.
   */
  app.post(`${API}/save_weights_for_sampler`, async (c) => {
    const body = await readJson(c, SaveWeightsForSamplerRequest);
    const run = await runOfModel(training, actorOf(c), body.model_id);
    if (body.path) {
      return submit(c, run, body.seq_id, { kind: 'save', what: 'sampler', publish: false, name: body.path, ttlSeconds: body.ttl_seconds ?? null }, 'save_weights_for_sampler');
    }
    const n = body.sampling_session_seq_id ?? body.seq_id;
    const operation: SubmittedOperation = { kind: 'save', what: 'sampler', publish: true, name: `ephemeral_${n}`, ttlSeconds: null };
    return submit(c, run, body.seq_id, operation, 'save_weights_for_sampler', { samplingSessionSeq: n });
  });

  /**
   * By model (its first operation only), or session-addressed (0.38's `create_training_client_from_state`,
   * 0.25's with `create_model_via_load_weights`): a new model `{session_id}:train:{model_seq_id}`
   * made from the checkpoint, its base model and rank.
   */
  app.post(`${API}/load_weights`, async (c) => {
    const body = await readJson(c, LoadWeightsRequest);
    assertAdamW(body.optimizer_config);
    const load: SubmittedOperation = { kind: 'load', path: body.path, withOptimizer: body.optimizer };
    if (body.model_id) {
      if (body.seq_id != null && body.seq_id !== 1) throw new ValidationError(`LoadWeights is not permitted with seq_id ${body.seq_id}: load weights only as a model's first operation, or create a model from them.`);
      return submit(c, await runOfModel(training, actorOf(c), body.model_id), body.seq_id, load, 'load_weights');
    }
    if (!body.session_id || body.model_seq_id == null) {
      throw new ValidationError('load_weights needs model_id (and seq_id), or session_id and model_seq_id to create a model from the checkpoint');
    }
    const checkpoint = await training.checkpoints.resolve(actorOf(c), body.path);
    const run = await createRun(c, {
      sessionId: body.session_id,
      modelSeqId: body.model_seq_id,
      baseModel: body.base_model ?? checkpoint.baseModel,
      loraRank: checkpoint.loraConfig.r,
      seed: null,
      fromPath: body.path,
    });
    await init(c, run);
    const { operationId } = await training.operations.submit(actorOf(c), run.id, { idempotencyKey: CREATE_VIA_LOAD_KEY, operation: load });
    return c.json({ request_id: requestIdOf({ kind: 'op', run: run.id, op: operationId, answer: 'load_weights', model: modelIdOf(run) }), model_id: modelIdOf(run) });
  });

  app.post(`${API}/weights_info`, async (c) => {
    const checkpoint = await training.checkpoints.resolve(actorOf(c), (await readJson(c, WeightsInfoRequest)).tinker_path);
    // The trainer adapts every linear layer, whatever train_* asked for.
    return c.json({ base_model: checkpoint.baseModel, is_lora: true, lora_rank: checkpoint.loraConfig.r, train_unembed: true, train_mlp: true, train_attn: true });
  });
}
