import { describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors.ts';
import type { TrainingSampler } from '#core/training/model.ts';
import { selectWeights } from './weight-selection.ts';

const paired: TrainingSampler = { id: 'sp1', userId: 'u1', sessionId: 's1', runId: 'r1', baseModel: 'M', modelPath: null, createdAt: '2026-01-01T00:00:00Z' };
const standalone: TrainingSampler = { ...paired, id: 'sp2', runId: null, modelPath: 'bt://loops:r0/sampler_weights/base' };
const pinned = 'bt://loops:r1/sampler_weights/step-1';

describe('selectWeights (loops-data-plane.md §10.2)', () => {
  it('pins the adapter X-Checkpoint-Path names, repeated in lora or not', () => {
    expect(selectWeights(paired, { checkpointPath: pinned, runId: 'r1' }, pinned)).toEqual({ checkpointPath: pinned, runId: 'r1' });
    expect(selectWeights(standalone, { checkpointPath: pinned }, undefined)).toEqual({ checkpointPath: pinned, runId: null });
    expect(selectWeights(standalone, {}, pinned)).toEqual({ checkpointPath: pinned, runId: null });
  });

  it("leaves the sampler's own model to a paired client before its first publish, and to a standalone client", () => {
    expect(selectWeights(paired, { runId: 'r1' }, undefined)).toEqual({ checkpointPath: null, runId: 'r1' });
    expect(selectWeights(standalone, { samplerId: 'sp2' }, undefined)).toEqual({ checkpointPath: null, runId: null });
  });

  it('refuses an X-Sampler-Id other than the path’s, and a lora that differs from X-Checkpoint-Path', () => {
    expect(() => selectWeights(paired, { samplerId: 'sp9' }, undefined)).toThrow(/X-Sampler-Id names sampler 'sp9', but this is sampler 'sp1'/);
    expect(() => selectWeights(paired, { checkpointPath: pinned }, 'bt://loops:r1/sampler_weights/b')).toThrow(ValidationError);
  });
});
