/**
 * Training fixtures for API tests: runs, samplers and saved checkpoints made through the training
 * service, without a trainer engine (a checkpoint is recorded as a save's result is), and what
 * operations are checked with.
 */
import { expect } from 'vitest';
import type { Actor } from '#core/actor.ts';
import type { CheckpointTarget, OperationView, SubmittedOperation, TrainingCheckpoint, TrainingRun, TrainingSampler } from '#core/training/model.ts';
import type { CreateRunInput } from '#core/training/runs.ts';
import { runKey } from '#core/training/run-records.ts';
import type { TestApp } from './app.ts';

export const RELAY_URL = 'http://relay.test';

export const actorOf = (userId: string): Actor => ({ userId, isAdmin: false });

/** A Loops run of `actor`'s with LoRA rank 8 in a fresh session, unless `overrides` say otherwise. */
export async function createRun(api: TestApp, actor: Actor, baseModel: string, overrides: Partial<CreateRunInput> = {}): Promise<TrainingRun> {
  const { training } = api.services;
  const sessionId = overrides.sessionId ?? (await training.sessions.create(actor, { trainingProjectId: null })).id;
  return training.runs.create(actor, {
    sessionId,
    protocol: 'loops',
    baseModel,
    loraRank: 8,
    seed: null,
    maxSeqLen: null,
    name: null,
    availabilityModel: 'dedicated',
    scaleDownDelaySeconds: 600,
    fromPath: null,
    relayUrl: RELAY_URL,
    ...overrides,
  });
}

/** An optimizer step with the Adam settings the tests use. */
export const OPTIM_STEP: SubmittedOperation = { kind: 'optim_step', adam: { learning_rate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 } };

/** A done view with exactly this result (the view may also say which operation it answers). */
export function expectDone(view: OperationView | undefined, result: Record<string, unknown>): void {
  expect(view?.status).toBe('done');
  expect(view?.status === 'done' && view.result).toEqual(result);
}

/** Records a save of the run's weights under `name`, as the trainer relay does when a save's result arrives. */
export async function saveCheckpoint(
  api: TestApp,
  run: TrainingRun,
  name: string,
  { target = 'sampler', publish = false }: { target?: CheckpointTarget; publish?: boolean } = {},
): Promise<TrainingCheckpoint> {
  const item = await api.store.get(runKey(run.id));
  if (!item) throw new Error(`run ${run.id} is missing`);
  return api.services.training.checkpoints.record(item, {
    address: { runId: run.id, target, name },
    result: {
      step: 1,
      policy_version: publish ? 1 : 0,
      files: [{ name: 'adapter_model.safetensors', size_bytes: 16 }, { name: 'adapter_config.json', size_bytes: 2 }],
      lora_config: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] },
    },
    publish,
    ttlSeconds: null,
  });
}

export async function createSampler(api: TestApp, actor: Actor, from: { baseModel: string } | { modelPath: string }): Promise<TrainingSampler> {
  const { training } = api.services;
  const session = await training.sessions.create(actor, { trainingProjectId: null });
  return training.samplers.createStandalone(actor, { sessionId: session.id, ...from });
}
