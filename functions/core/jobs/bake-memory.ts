/**
 * What a bake needs in GPU memory, estimated before it is submitted, so that the dispatcher can
 * send it to a GPU lane it fits (bake-lanes.ts). It is the engine's own estimate
 * (batch/engine/src/bakehouse_engine/bake/plan.py `estimate_bytes`, whose docstring explains each
 * term) for the bake as configured, fully sharded, without CPU offload, on CUDA devices; the
 * engine plans again on the GPUs it finds and may still shrink the micro-batch or offload.
 * test/fixtures/bake-plan-estimates.json, written by plan.py, pins the two together (a pytest
 * checks the fixture against plan.py, a vitest this module against the fixture).
 */
import type { BakeConfigBase } from '#schemas/bread.ts';
import { TOY_MODEL } from '../models.ts';

/** A decoder-only transformer's sizes, as plan.py's ModelShape reads them from config.json. */
export interface ModelShape {
  hidden: number;
  layers: number;
  vocab: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  tiedEmbeddings: boolean;
}

const qwen3 = (hidden: number, layers: number, intermediate: number, heads: number, tiedEmbeddings: boolean): ModelShape => ({
  hidden,
  layers,
  vocab: 151_936,
  intermediate,
  heads,
  kvHeads: 8,
  headDim: 128,
  tiedEmbeddings,
});

/** The catalog's models (from their config.json); a bake of any other model is not estimated. */
export const MODEL_SHAPES: Readonly<Record<string, ModelShape>> = {
  [TOY_MODEL]: { hidden: 128, layers: 4, vocab: 2048, intermediate: 384, heads: 4, kvHeads: 4, headDim: 32, tiedEmbeddings: true },
  'Qwen/Qwen3-0.6B': qwen3(1024, 28, 3072, 16, true),
  'Qwen/Qwen3-1.7B': qwen3(2048, 28, 6144, 16, true),
  'Qwen/Qwen3-4B': qwen3(2560, 36, 9728, 32, true),
  'Qwen/Qwen3-8B': qwen3(4096, 36, 12_288, 32, false),
  'Qwen/Qwen3-14B': qwen3(5120, 40, 17_408, 40, false),
  'Qwen/Qwen3-32B': qwen3(5120, 64, 25_600, 64, false),
};

// plan.py's coefficients, and the engine's defaults (bake/settings.py) for what a config leaves unset.
const GIB = 2 ** 30;
const CUDA_OVERHEAD_BYTES = 2 * GIB;
const HIDDEN_ACTIVATIONS = 10;
const KV_ACTIVATIONS = 4;
const INTERMEDIATE_ACTIVATIONS = 5;
const LOSS_CHUNK_TENSORS = 8;
const TRANSIENT_SLACK = 1.1;
/** bake/loss.py: elements of one [chunk, vocab] float32 tensor. */
const CHUNK_ELEMENTS = 2 ** 25;
const DEFAULT_MICRO_BATCH = 2;
const DEFAULT_MAX_LENGTH = 3000;
const DEFAULT_LORA_RANK = 32;
const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** What a bake config asks for, as far as memory goes (plan.py's BakeRequest). */
export interface BakeRequest {
  dtypeBytes: number;
  microBatchSize: number;
  maxLength: number;
  activationCheckpointing: boolean;
  loraRank: number;
  loraTargets: string | string[];
}

export function bakeRequest(config: BakeConfigBase): BakeRequest {
  const adapter = config.model?.baked_adapter_config;
  return {
    // Unset: bf16, as the engine trains on a GPU.
    dtypeBytes: config.model?.dtype === 'fp32' ? 4 : 2,
    microBatchSize: config.micro_batch_size ?? DEFAULT_MICRO_BATCH,
    maxLength: config.data?.max_length ?? DEFAULT_MAX_LENGTH,
    activationCheckpointing: !config.model?.disable_activation_checkpoint,
    loraRank: adapter?.r ?? DEFAULT_LORA_RANK,
    loraTargets: adapter?.target_modules ?? 'all-linear',
  };
}

function linears(shape: ModelShape): Record<string, [number, number]> {
  const q = shape.heads * shape.headDim;
  const kv = shape.kvHeads * shape.headDim;
  const { hidden: h, intermediate: i } = shape;
  return { q_proj: [h, q], k_proj: [h, kv], v_proj: [h, kv], o_proj: [q, h], gate_proj: [h, i], up_proj: [h, i], down_proj: [i, h] };
}

export function parameterCount(shape: ModelShape): number {
  const perLayer = Object.values(linears(shape)).reduce((sum, [a, b]) => sum + a * b, 0) + 2 * shape.hidden + 2 * shape.headDim;
  return shape.layers * perLayer + shape.vocab * shape.hidden * (shape.tiedEmbeddings ? 1 : 2) + shape.hidden;
}

function loraParameters(shape: ModelShape, rank: number, targets: string | string[]): number {
  const names = targets === 'all-linear' ? ALL_LINEAR : [targets].flat();
  const chosen = Object.entries(linears(shape)).filter(([name]) => names.some((target) => target.includes(name)));
  return shape.layers * rank * chosen.reduce((sum, [, [a, b]]) => sum + a + b, 0);
}

/** plan.py `estimate_bytes` with full sharding over `worldSize` GPUs and no offload: bytes on each GPU. */
export function bytesPerGpu(shape: ModelShape, request: BakeRequest, worldSize: number): number {
  const b = request.dtypeBytes;
  const weights = (parameterCount(shape) * b) / worldSize;
  const state = (loraParameters(shape, request.loraRank, request.loraTargets) * 16) / worldSize;
  const tokens = request.microBatchSize * request.maxLength;
  const perLayer =
    tokens * b * (HIDDEN_ACTIVATIONS * shape.hidden + KV_ACTIVATIONS * shape.kvHeads * shape.headDim + INTERMEDIATE_ACTIVATIONS * shape.intermediate);
  const activations = request.activationCheckpointing ? shape.layers * tokens * shape.hidden * b + perLayer : shape.layers * perLayer;
  const chunk = Math.min(tokens, Math.max(1, Math.floor(CHUNK_ELEMENTS / shape.vocab)));
  let loss = tokens * shape.hidden * (4 + 4 + b) + LOSS_CHUNK_TENSORS * chunk * shape.vocab * 4;
  if (b !== 4) loss += shape.vocab * shape.hidden * 4;
  return Math.trunc(weights + state + TRANSIENT_SLACK * (activations + loss) + CUDA_OVERHEAD_BYTES);
}

/** GiB each of `gpus` GPUs needs for a bake; a function of the GPU count. */
export type BakeMemory = (gpus: number) => number;

/** The estimate for a bake of `baseModel` with `config`; undefined for a model of unknown shape. */
export function estimateBakeMemory(baseModel: string, config: BakeConfigBase): BakeMemory | undefined {
  const shape = MODEL_SHAPES[baseModel];
  if (!shape) return undefined;
  const request = bakeRequest(config);
  return (gpus) => bytesPerGpu(shape, request, gpus) / GIB;
}
