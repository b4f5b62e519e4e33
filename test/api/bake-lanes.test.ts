/** The dispatcher's choice of GPU lane for a bake: the memory estimate and the cheapest placement it fits. */
import { describe, expect, it } from 'vitest';
import { chooseBakeLane } from '#core/jobs/bake-lanes.ts';
import { estimateBakeMemory, gibPerGpu } from '#core/jobs/bake-memory.ts';

const GIB = 1024 ** 3;
const defaultLane = { name: 'default', gpusPerNode: 1, gpuMemoryGiB: 24, maxNodes: 1 };
const quad = { name: 'quad', gpusPerNode: 4, gpuMemoryGiB: 48, maxNodes: 1 };
const eight = { name: 'eight', gpusPerNode: 8, gpuMemoryGiB: 80, maxNodes: 4 };
const singles = { name: 'singles', gpusPerNode: 1, gpuMemoryGiB: 48, maxNodes: 4 };

describe('estimateBakeMemory', () => {
  it('follows the documented formula for Qwen3-8B with the engine defaults (micro-batch 2, 3000 tokens, rank 8, checkpointing)', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-8B', {})!;
    const loraState = 8 * 2 * 4096 * 7 * 36 * 16;
    expect(memory.shardedBytes).toBe(2 * 8.2e9 + loraState);
    const tokens = 2 * 3000;
    expect(memory.perGpuBytes).toBe(tokens * 4096 * 2 * (36 + 20) + 3 * 128 * 1024 ** 2 + tokens * 4096 * 4 + 2 * GIB);
    expect(gibPerGpu(memory, 1)).toBeCloseTo(20.5, 1);
  });

  it('grows with the sequence length, micro-batch and LoRA rank, and without activation checkpointing', () => {
    const base = estimateBakeMemory('Qwen/Qwen3-4B', {})!;
    const longer = estimateBakeMemory('Qwen/Qwen3-4B', { data: { max_length: 6000 } })!;
    const wider = estimateBakeMemory('Qwen/Qwen3-4B', { micro_batch_size: 4 })!;
    const ranked = estimateBakeMemory('Qwen/Qwen3-4B', { model: { baked_adapter_config: { r: 64 } } })!;
    const unchecked = estimateBakeMemory('Qwen/Qwen3-4B', { model: { disable_activation_checkpoint: true } })!;
    expect(longer.perGpuBytes).toBeGreaterThan(base.perGpuBytes);
    expect(wider.perGpuBytes).toBe(longer.perGpuBytes);
    expect(ranked.shardedBytes).toBeGreaterThan(base.shardedBytes);
    expect(unchecked.perGpuBytes).toBeGreaterThan(5 * base.perGpuBytes);
  });

  it('does not estimate a model of unknown shape', () => {
    expect(estimateBakeMemory('someone/unknown-70b', {})).toBeUndefined();
  });

  it('divides only the weights and LoRA state among GPUs', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-32B', {})!;
    expect(gibPerGpu(memory, 4) * GIB).toBeCloseTo(memory.shardedBytes / 4 + memory.perGpuBytes, 0);
  });
});

describe('chooseBakeLane', () => {
  const lanes = [defaultLane, quad, eight];

  it('keeps a bake that fits one default GPU on the default lane', () => {
    expect(chooseBakeLane(estimateBakeMemory('bakehouse/toy-instruct', {}), lanes)).toEqual({ lane: defaultLane, nodes: 1 });
    expect(chooseBakeLane(estimateBakeMemory('Qwen/Qwen3-8B', {}), lanes)).toEqual({ lane: defaultLane, nodes: 1 });
  });

  it('sends a bake too large for one GPU to the smallest lane it fits', () => {
    expect(chooseBakeLane(estimateBakeMemory('Qwen/Qwen3-14B', {}), lanes)).toEqual({ lane: quad, nodes: 1 });
  });

  it('spans as few nodes as the bake needs on a multi-node lane', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-32B', {})!;
    expect(gibPerGpu(memory, 1)).toBeGreaterThan(48);
    expect(gibPerGpu(memory, 2)).toBeLessThanOrEqual(48);
    expect(chooseBakeLane(memory, [defaultLane, singles])).toEqual({ lane: singles, nodes: 2 });
  });

  it('prefers fewer GPU-gigabytes whatever the order of the lanes', () => {
    expect(chooseBakeLane(estimateBakeMemory('Qwen/Qwen3-14B', {}), [defaultLane, eight, quad])).toEqual({ lane: quad, nodes: 1 });
  });

  it('gives a bake that fits nowhere the largest placement, where the engine may offload or explain', () => {
    const memory = estimateBakeMemory('Qwen/Qwen3-32B', { data: { max_length: 8000 }, micro_batch_size: 1, model: { disable_activation_checkpoint: true } })!;
    expect(gibPerGpu(memory, 32)).toBeGreaterThan(80);
    expect(chooseBakeLane(memory, lanes)).toEqual({ lane: eight, nodes: 4 });
  });

  it('leaves a bake of unknown size on the default lane', () => {
    expect(chooseBakeLane(undefined, lanes)).toEqual({ lane: defaultLane, nodes: 1 });
  });
});
