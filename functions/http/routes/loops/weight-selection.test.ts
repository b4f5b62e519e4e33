import { describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '#core/errors.ts';
import type { TrainingCheckpoint, TrainingSampler } from '#core/training/model.ts';
import { selectWeights } from './weight-selection.ts';

const actor = { userId: 'u1', isAdmin: false };
const paired: TrainingSampler = { id: 'sp1', userId: 'u1', sessionId: 's1', runId: 'r1', baseModel: 'M', modelPath: null, createdAt: '2026-01-01T00:00:00Z' };
const standalone: TrainingSampler = { ...paired, id: 'sp2', runId: null, modelPath: 'bt://loops:r0/sampler_weights/base' };

const checkpoint = (path: string, overrides: Partial<TrainingCheckpoint> = {}): TrainingCheckpoint => ({
  id: 'Ck00001',
  runId: 'r1',
  userId: 'u1',
  name: path.split('/').pop()!,
  target: path.includes('/sampler_weights/') ? 'sampler' : 'trainer',
  path,
  baseModel: 'M',
  loraConfig: { r: 8, lora_alpha: 32, target_modules: ['q_proj'] },
  step: 1,
  files: [],
  sizeBytes: 0,
  ephemeral: false,
  expiresAt: null,
  createdAt: '2026-01-01T00:00:00Z',
  ...overrides,
});
const known = async (_actor: unknown, path: string) => {
  if (path.endsWith('/gone')) throw new NotFoundError('Checkpoint not found');
  return checkpoint(path, path.endsWith('/other') ? { baseModel: 'N' } : {});
};

describe('selectWeights (loops-data-plane.md §10.2)', () => {
  const pinned = 'bt://loops:r1/sampler_weights/step-1';

  it('serves a pinned adapter, given by header and repeated in lora', async () => {
    await expect(selectWeights(known, actor, paired, { checkpointPath: pinned, runId: 'r1' }, pinned)).resolves.toEqual({ checkpointPath: pinned, runId: 'r1' });
    await expect(selectWeights(known, actor, standalone, { checkpointPath: pinned }, undefined)).resolves.toEqual({ checkpointPath: pinned, runId: null });
  });

  it('serves the base model to a paired client before its first publish', async () => {
    await expect(selectWeights(known, actor, paired, { runId: 'r1' }, undefined)).resolves.toEqual({ checkpointPath: null, runId: 'r1' });
  });

  it("serves a standalone sampler's own model when no header picks one", async () => {
    await expect(selectWeights(known, actor, standalone, { samplerId: 'sp2' }, undefined)).resolves.toEqual({ checkpointPath: standalone.modelPath, runId: null });
    await expect(selectWeights(known, actor, { ...standalone, modelPath: null }, {}, undefined)).resolves.toEqual({ checkpointPath: null, runId: null });
  });

  it('refuses headers that disagree with the path or each other (422)', async () => {
    await expect(selectWeights(known, actor, paired, { samplerId: 'sp9' }, undefined)).rejects.toThrow(/X-Sampler-Id names sampler 'sp9'/);
    await expect(selectWeights(known, actor, paired, { runId: 'r9' }, undefined)).rejects.toThrow(/paired with run 'r1'/);
    await expect(selectWeights(known, actor, standalone, { runId: 'r1' }, undefined)).rejects.toThrow(/not paired with a run/);
    await expect(selectWeights(known, actor, paired, { checkpointPath: pinned }, 'bt://loops:r1/sampler_weights/b')).rejects.toThrow(ValidationError);
  });

  it('refuses training state, and adapters of another base model; an unknown path stays a 404', async () => {
    await expect(selectWeights(known, actor, paired, { checkpointPath: 'bt://loops:r1/weights/s' }, undefined)).rejects.toThrow(/training state/);
    await expect(selectWeights(known, actor, paired, { checkpointPath: 'bt://loops:r1/sampler_weights/other' }, undefined)).rejects.toThrow(/trained on N, but this sampler serves M/);
    await expect(selectWeights(known, actor, paired, { checkpointPath: 'bt://loops:r1/sampler_weights/gone' }, undefined)).rejects.toThrow(NotFoundError);
  });
});
