/**
 * Training fixtures for sampling and chat tests: runs, samplers and saved checkpoints made through
 * the training service, without a trainer engine (a checkpoint is recorded as a save's result is).
 */
import type { Actor } from '#core/actor.ts';
import type { CheckpointTarget, TrainingCheckpoint, TrainingRun, TrainingSampler } from '#core/training/model.ts';
import { runKey } from '#core/training/run-records.ts';
import type { TestApp } from './app.ts';

export const RELAY_URL = 'http://relay.test';

export const actorOf = (userId: string): Actor => ({ userId, isAdmin: false });

export async function createRun(api: TestApp, actor: Actor, baseModel: string): Promise<TrainingRun> {
  const { training } = api.services;
  const session = await training.sessions.create(actor, { trainingProjectId: null });
  return training.runs.create(actor, {
    sessionId: session.id,
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
  });
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
