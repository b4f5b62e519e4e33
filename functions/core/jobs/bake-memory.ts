/**
 * What a bake needs in GPU memory, estimated before it is submitted, so that the dispatcher can
 * send it to a GPU lane it fits (bake-lanes.ts). The engine plans again with the GPUs it finds and
 * chooses sharding, offload and micro-batching; this estimate only picks the hardware.
 *
 * The formula, in bytes (bf16 weights, LoRA trained in float32 with AdamW):
 * - weights: 2 × parameters — sharded across GPUs (FSDP) when there are several;
 * - LoRA state: rank × 2 × hidden × 7 target modules × layers parameters, × 16 bytes (weight,
 *   gradient, two AdamW moments) — sharded too;
 * - activations, per GPU, for `micro_batch_size × max_length` tokens: with activation
 *   checkpointing one bf16 hidden state per layer plus one layer recomputed (≈ 20 hidden-sized
 *   bf16 tensors); without, those 20 for every layer;
 * - the loss: three float32 `[chunk, vocab]` tensors of 128 MiB (bake/loss.py) and the float32
 *   hidden states of the loss positions;
 * - 2 GiB per GPU for the CUDA context and allocator slack.
 */
import type { BakeConfigBase } from '#schemas/bread.ts';
import { TOY_MODEL } from '../models.ts';

export interface ModelShape {
  parameters: number;
  hiddenSize: number;
  layers: number;
  vocabSize: number;
}

/** Shapes of the catalog's models (their config.json); others are not estimated. */
export const MODEL_SHAPES: Readonly<Record<string, ModelShape>> = {
  [TOY_MODEL]: { parameters: 1.1e6, hiddenSize: 128, layers: 4, vocabSize: 2048 },
  'Qwen/Qwen3-0.6B': { parameters: 0.6e9, hiddenSize: 1024, layers: 28, vocabSize: 151_936 },
  'Qwen/Qwen3-1.7B': { parameters: 1.7e9, hiddenSize: 2048, layers: 28, vocabSize: 151_936 },
  'Qwen/Qwen3-4B': { parameters: 4.0e9, hiddenSize: 2560, layers: 36, vocabSize: 151_936 },
  'Qwen/Qwen3-8B': { parameters: 8.2e9, hiddenSize: 4096, layers: 36, vocabSize: 151_936 },
  'Qwen/Qwen3-14B': { parameters: 14.8e9, hiddenSize: 5120, layers: 40, vocabSize: 151_936 },
  'Qwen/Qwen3-32B': { parameters: 32.8e9, hiddenSize: 5120, layers: 64, vocabSize: 151_936 },
};

/** The engine's defaults (bake/settings.py) for what a bake config leaves unset. */
const DEFAULT_MICRO_BATCH = 2;
const DEFAULT_MAX_LENGTH = 3000;
const DEFAULT_LORA_RANK = 8;

const GIB = 1024 ** 3;
const LORA_TARGET_MODULES = 7;
const LOSS_CHUNK_BYTES = 3 * 128 * 1024 ** 2;
const PER_GPU_OVERHEAD_BYTES = 2 * GIB;

export interface BakeMemory {
  /** Divided among the GPUs of a sharded bake: weights and LoRA training state. */
  shardedBytes: number;
  /** On every GPU whatever the sharding: activations, the loss's working set, the CUDA context. */
  perGpuBytes: number;
}

/** The estimate for a bake of `baseModel` with `config`; undefined for a model of unknown shape. */
export function estimateBakeMemory(baseModel: string, config: BakeConfigBase): BakeMemory | undefined {
  const shape = MODEL_SHAPES[baseModel];
  if (!shape) return undefined;
  const tokens = (config.micro_batch_size ?? DEFAULT_MICRO_BATCH) * (config.data?.max_length ?? DEFAULT_MAX_LENGTH);
  const rank = config.model?.baked_adapter_config?.r ?? DEFAULT_LORA_RANK;
  const checkpointing = !config.model?.disable_activation_checkpoint;

  const weights = 2 * shape.parameters;
  const loraState = rank * 2 * shape.hiddenSize * LORA_TARGET_MODULES * shape.layers * 16;
  const hiddenState = tokens * shape.hiddenSize * 2;
  const activations = checkpointing ? hiddenState * (shape.layers + 20) : hiddenState * 20 * shape.layers;
  const loss = LOSS_CHUNK_BYTES + tokens * shape.hiddenSize * 4;
  return { shardedBytes: weights + loraState, perGpuBytes: activations + loss + PER_GPU_OVERHEAD_BYTES };
}

/** GiB each of `gpus` GPUs needs for the bake. */
export function gibPerGpu(memory: BakeMemory, gpus: number): number {
  return (memory.shardedBytes / gpus + memory.perGpuBytes) / GIB;
}
