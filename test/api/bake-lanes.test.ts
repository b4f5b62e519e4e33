/** The dispatcher's choice of GPU lane for a bake: the engine's memory estimate and the cheapest placement it fits. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chooseBakeLane } from '#core/jobs/bake-lanes.ts';
import { bytesPerGpu, bakeRequest, estimateBakeMemory, MODEL_SHAPES, parameterCount } from '#core/jobs/bake-memory.ts';
import type { BakeConfigBase } from '#schemas/bread.ts';

/** Written by batch/engine/tests/test_bake_plan_fixture.py from the engine's plan.py. */
const fixture = JSON.parse(readFileSync(new URL('../fixtures/bake-plan-estimates.json', import.meta.url), 'utf8')) as {
  shapes: Record<string, { hidden: number; layers: number; vocab: number; intermediate: number; heads: number; kv_heads: number; head_dim: number; tied_embeddings: boolean; parameters: number }>;
  cases: { model: string; config: BakeConfigBase; gpus: number; bytes_per_gpu: number }[];
};

const defaultLane = { name: 'default', gpusPerNode: 1, gpuMemoryGiB: 24, maxNodes: 1 };
const quad = { name: 'quad', gpusPerNode: 4, gpuMemoryGiB: 48, maxNodes: 1 };
const eight = { name: 'eight', gpusPerNode: 8, gpuMemoryGiB: 80, maxNodes: 4 };
const singles = { name: 'singles', gpusPerNode: 1, gpuMemoryGiB: 48, maxNodes: 4 };

describe('the bake memory estimate', () => {
  it("knows the catalog's model shapes as the engine's plan reads them", () => {
    expect(Object.keys(MODEL_SHAPES).sort()).toEqual(Object.keys(fixture.shapes).sort());
    for (const [model, shape] of Object.entries(fixture.shapes)) {
      const { kv_heads: kvHeads, head_dim: headDim, tied_embeddings: tiedEmbeddings, parameters, ...rest } = shape;
      expect(MODEL_SHAPES[model], model).toEqual({ ...rest, kvHeads, headDim, tiedEmbeddings });
      expect(parameterCount(MODEL_SHAPES[model]!), model).toBe(parameters);
    }
  });

  it.each(fixture.cases.map((c) => [c.model, JSON.stringify(c.config), c.gpus, c] as const))(
    'agrees with plan.py for %s, config %s, on %i GPUs',
    (model, _config, gpus, { config, bytes_per_gpu }) => {
      expect(bytesPerGpu(MODEL_SHAPES[model]!, bakeRequest(config), gpus)).toBe(bytes_per_gpu);
    },
  );

  it('does not estimate a model of unknown shape', () => {
    expect(estimateBakeMemory('someone/unknown-70b', {})).toBeUndefined();
  });
});

describe('chooseBakeLane', () => {
  const lanes = [defaultLane, quad, eight];

  it('keeps a bake that fits one default GPU on the default lane', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-4B', {})!;
    expect(memory(1)).toBeLessThanOrEqual(24);
    expect(chooseBakeLane(memory, lanes)).toEqual({ lane: defaultLane, nodes: 1 });
    expect(chooseBakeLane(estimateBakeMemory('bakehouse/toy-instruct', {}), lanes)).toEqual({ lane: defaultLane, nodes: 1 });
  });

  it('sends a bake too large for one GPU to the smallest lane it fits', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-14B', {})!;
    expect(memory(1)).toBeGreaterThan(24);
    expect(chooseBakeLane(memory, lanes)).toEqual({ lane: quad, nodes: 1 });
  });

  it('prefers fewer GPU-gigabytes whatever the order of the lanes', () => {
    expect(chooseBakeLane(estimateBakeMemory('Qwen/Qwen3-14B', {}), [defaultLane, eight, quad])).toEqual({ lane: quad, nodes: 1 });
    expect(chooseBakeLane(estimateBakeMemory('Qwen/Qwen3-14B', {}), [defaultLane, quad, singles])).toEqual({ lane: singles, nodes: 1 });
  });

  it('spans as few nodes as the bake needs on a multi-node lane', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-32B', {})!;
    expect(memory(1)).toBeGreaterThan(48);
    expect(memory(2)).toBeLessThanOrEqual(48);
    expect(chooseBakeLane(memory, [defaultLane, singles])).toEqual({ lane: singles, nodes: 2 });
  });

  it('gives a bake that fits nowhere the largest placement, where the engine may offload or explain', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-32B', { data: { max_length: 32_768 }, micro_batch_size: 1, model: { disable_activation_checkpoint: true } })!;
    expect(memory(32)).toBeGreaterThan(80);
    expect(chooseBakeLane(memory, lanes)).toEqual({ lane: eight, nodes: 4 });
  });

  it('leaves a bake of unknown size on the default lane', () => {
    expect(chooseBakeLane(undefined, lanes)).toEqual({ lane: defaultLane, nodes: 1 });
  });
});
