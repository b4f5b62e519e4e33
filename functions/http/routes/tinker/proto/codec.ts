/**
 * The Tinker protobuf wire (loops-api.md §2.11, §2.14) to and from the training service's neutral
 * shapes: a `forward_backward` request body (optionally zstd-compressed) → TrainerDatum[] and its
 * settings; a forward result → ForwardBackwardOutput; a token-level sample result → SampleResponse.
 * The messages are tinker_public.proto's, read and written by @bufbuild/protobuf; this module only
 * packs and unpacks the little-endian arrays those messages carry in `bytes` fields. Problems with
 * a request throw ValidationError with a sentence the caller can act on.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Decompress } from 'fzstd';
import { ValidationError } from '#core/errors.ts';
import type { SampleResult } from '#schemas/relay.ts';
import type { TrainerDatum, TrainerTensor } from '#schemas/trainer.ts';
import { denseFromCsr } from '../csr.ts';
import {
  ArrayRecordSchema,
  BatchedTensorSchema,
  DType,
  ForwardBackwardOutputSchema,
  ForwardBackwardRequestSchema,
  SampleResponseSchema,
  SampledSequenceSchema,
  StopReason,
  TopkLogprobsSchema,
  type Datum,
  type Tensor,
} from './tinker_public_pb.ts';

/** The media type of protobuf bodies in both directions. */
export const PROTOBUF_MEDIA_TYPE = 'application/x-protobuf';

/**
 * The most a zstd body may expand to. The SDK splits a forward_backward into requests of about
 * 5 MB (`fwdbwd_max_chunk_bytes_count`); this leaves room for large single datums while refusing
 * a small body that would expand without bound.
 */
export const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

/** Top-k cells with no candidate, as the SDK's decoder expects them (§2.11). */
export const TOPK_UNUSED_TOKEN = 0;
export const TOPK_UNUSED_LOGPROB = -99999.0;

/** A decoded `forward_backward` request, in the training service's terms. */
export interface ForwardBackwardRequestBody {
  model_id: string;
  seq_id: number;
  data: TrainerDatum[];
  loss_fn: string;
  /** The loss's settings: `loss_fn_config_v2` when the SDK wrote it (0.38), else the numeric map. */
  loss_fn_config: Record<string, number | string> | null;
  forward_only: boolean;
}

/** A forward or forward_backward result as the SDK's JSON form names it (§2.9). */
export interface ForwardBackwardOutputBody {
  loss_fn_output_type: string;
  /** One per datum, in request order: `logprobs` and any other per-datum tensors. */
  loss_fn_outputs: Record<string, TrainerTensor>[];
  /** Keyed `name:reduction`. */
  metrics: Record<string, number>;
}

// ---- requests ----

export function decodeForwardBackwardRequest(bytes: Uint8Array, contentEncoding?: string | null): ForwardBackwardRequestBody {
  const body = decodeContent(bytes, contentEncoding);
  let message;
  try {
    message = fromBinary(ForwardBackwardRequestSchema, body);
  } catch {
    throw new ValidationError(
      'The forward_backward body is not a protobuf tinker_public.ForwardBackwardRequest; send it as the tinker SDK does, or as JSON with Content-Type: application/json.',
    );
  }
  return {
    model_id: message.modelId,
    seq_id: message.seqId,
    data: message.data.map((datum, index) => toTrainerDatum(datum, index)),
    loss_fn: message.lossFn,
    loss_fn_config: lossFnConfig(message.lossFnConfigV2, message.lossFnConfig),
    forward_only: message.forwardOnly,
  };
}

/** The body as the SDK wrote it: zstd-compressed when it says so (ASGI-style servers never undo it). */
function decodeContent(bytes: Uint8Array, contentEncoding: string | null | undefined): Uint8Array {
  const encoding = (contentEncoding ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return bytes;
  if (encoding !== 'zstd') {
    throw new ValidationError(`Content-Encoding ${contentEncoding} is not supported; send the body uncompressed or with Content-Encoding: zstd.`);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  const tooLarge = new ValidationError(
    `The zstd body expands to more than ${MAX_DECOMPRESSED_BYTES / (1024 * 1024)} MiB; split the batch into smaller forward_backward calls.`,
  );
  try {
    // Streamed, so an oversized body is refused once it passes the limit rather than after.
    const stream = new Decompress((part) => {
      size += part.length;
      if (size > MAX_DECOMPRESSED_BYTES) throw tooLarge;
      parts.push(part);
    });
    stream.push(bytes, true);
  } catch (error) {
    if (error === tooLarge) throw error;
    throw new ValidationError('The body says Content-Encoding: zstd but is not valid zstd data; compress it with zstd or send it uncompressed.');
  }
  if (parts.length === 1) return parts[0]!;
  const joined = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

function lossFnConfig(
  v2: Record<string, { value: { case: 'number'; value: number } | { case: 'text'; value: string } | { case: undefined } }>,
  v1: Record<string, number>,
): Record<string, number | string> | null {
  const v2Entries = Object.entries(v2);
  if (v2Entries.length > 0) {
    return Object.fromEntries(
      v2Entries.map(([key, { value }]) => {
        if (value.case === undefined) throw new ValidationError(`loss_fn_config_v2.${key} has no value; give it a number or a text.`);
        return [key, value.value];
      }),
    );
  }
  return Object.keys(v1).length > 0 ? { ...v1 } : null;
}

function toTrainerDatum(datum: Datum, index: number): TrainerDatum {
  const at = `data.${index}`;
  const tokens: number[] = [];
  for (const chunk of datum.modelInput) {
    if (chunk.chunk.case !== 'encodedText') {
      throw new ValidationError(`${at}.model_input: ${chunk.chunk.case ?? 'empty'} chunks are not supported; send encoded_text chunks only.`);
    }
    const view = viewOf(chunk.chunk.value.tokens, 4, `${at}.model_input tokens`);
    for (let i = 0; i < view.byteLength; i += 4) tokens.push(view.getInt32(i, true));
  }
  if (tokens.length === 0) throw new ValidationError(`${at}.model_input must hold at least one token.`);
  const inputs = Object.fromEntries(
    Object.entries(datum.lossFnInputs).map(([name, tensor]) => [name, toTrainerTensor(tensor, `${at}.loss_fn_inputs.${name}`)]),
  );
  return { tokens, loss_fn_inputs: inputs };
}

/** What each wire dtype reads as; int32 widens to int64 and bfloat16 to float32, as in the SDK. */
const READERS: Partial<Record<DType, { size: number; dtype: 'float32' | 'int64'; read: (view: DataView, at: number) => number }>> = {
  [DType.DTYPE_FLOAT32]: { size: 4, dtype: 'float32', read: (view, at) => view.getFloat32(at, true) },
  [DType.DTYPE_INT64]: { size: 8, dtype: 'int64', read: (view, at) => Number(view.getBigInt64(at, true)) },
  [DType.DTYPE_INT32]: { size: 4, dtype: 'int64', read: (view, at) => view.getInt32(at, true) },
  [DType.DTYPE_BFLOAT16]: { size: 2, dtype: 'float32', read: (view, at) => bfloat16ToFloat(view.getUint16(at, true)) },
};

const widened = new DataView(new ArrayBuffer(4));
function bfloat16ToFloat(bits: number): number {
  widened.setUint32(0, bits << 16);
  return widened.getFloat32(0);
}

function viewOf(bytes: Uint8Array, itemSize: number, what: string): DataView {
  if (bytes.byteLength % itemSize !== 0) {
    throw new ValidationError(`${what} holds ${bytes.byteLength} bytes, not a whole number of ${itemSize}-byte values.`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readAll(bytes: Uint8Array, reader: { size: number; read: (view: DataView, at: number) => number }, what: string): number[] {
  const view = viewOf(bytes, reader.size, what);
  const values = new Array<number>(view.byteLength / reader.size);
  for (let i = 0; i < values.length; i++) values[i] = reader.read(view, i * reader.size);
  return values;
}

const INT64_READER = READERS[DType.DTYPE_INT64]!;

/** A wire Tensor as a dense row-major TrainerTensor; a CSR tensor is expanded. */
function toTrainerTensor(tensor: Tensor, what: string): TrainerTensor {
  const reader = READERS[tensor.dtype];
  if (!reader) throw new ValidationError(`${what}: dtype ${DType[tensor.dtype] ?? tensor.dtype} is not supported; send float32 or int64.`);
  const shape = tensor.shape.map(Number);
  if (shape.some((size) => !Number.isSafeInteger(size) || size < 0)) throw new ValidationError(`${what}: shape ${shape.join('×')} is not a list of sizes.`);
  const encoding = tensor.encoding;
  if (encoding.case === 'dense') {
    const data = readAll(encoding.value, reader, what);
    if (shape.length === 0) return { data, dtype: reader.dtype, shape: [data.length] };
    if (product(shape) !== data.length) throw new ValidationError(`${what}: shape ${shape.join('×')} does not hold its ${data.length} values.`);
    return { data, dtype: reader.dtype, shape };
  }
  if (encoding.case === 'sparseCsr') {
    const values = readAll(encoding.value.values, reader, what);
    const rowStarts = readAll(encoding.value.crowIndices, INT64_READER, `${what} crow_indices`);
    const cols = readAll(encoding.value.colIndices, INT64_READER, `${what} col_indices`);
    return { data: denseFromCsr(shape, values, rowStarts, cols, what), dtype: reader.dtype, shape };
  }
  throw new ValidationError(`${what}: the tensor has neither dense nor sparse_csr data.`);
}

function product(sizes: number[]): number {
  return sizes.reduce((total, size) => total * size, 1);
}

// ---- results ----

/** The dtype a tensor travels as: the SDK's public wire knows only float32 and int64. */
function wireDtype(dtype: TrainerTensor['dtype']): DType.DTYPE_FLOAT32 | DType.DTYPE_INT64 {
  return dtype.startsWith('float') || dtype === 'bfloat16' ? DType.DTYPE_FLOAT32 : DType.DTYPE_INT64;
}

/** Values in the wire dtype; a missing float (null: not finite) travels as NaN. */
function packValues(values: (number | null)[], dtype: DType.DTYPE_FLOAT32 | DType.DTYPE_INT64): Uint8Array {
  if (dtype === DType.DTYPE_FLOAT32) return float32Bytes(values);
  const packed = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) packed[i] = BigInt(Math.trunc(values[i] ?? 0));
  return littleEndian(packed);
}

function float32Bytes(values: (number | null)[]): Uint8Array {
  const packed = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) packed[i] = values[i] ?? Number.NaN;
  return littleEndian(packed);
}

function int32Bytes(values: number[]): Uint8Array {
  return littleEndian(Int32Array.from(values));
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** The typed array's bytes in little-endian order, whatever the host's order. */
function littleEndian(values: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (HOST_IS_LITTLE_ENDIAN) return bytes;
  const size = values.BYTES_PER_ELEMENT;
  const swapped = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) for (let j = 0; j < size; j++) swapped[i + j] = bytes[i + size - 1 - j]!;
  return swapped;
}

/** A run of consecutive datums whose fields share names, dtypes and trailing shapes. */
function recordKey(outputs: Record<string, TrainerTensor>): string {
  return JSON.stringify(
    Object.keys(outputs)
      .sort()
      .map((name) => [name, wireDtype(outputs[name]!.dtype), outputs[name]!.shape.slice(1)]),
  );
}

/**
 * A forward result as the SDK's `ForwardBackwardOutput`: one ArrayRecord per run of datums with
 * matching fields (one for an ordinary batch), each field a BatchedTensor with byte offsets.
 */
export function encodeForwardBackwardOutput(result: ForwardBackwardOutputBody): Uint8Array {
  const runs: Record<string, TrainerTensor>[][] = [];
  let lastKey: string | undefined;
  for (const outputs of result.loss_fn_outputs) {
    const key = recordKey(outputs);
    if (key !== lastKey) runs.push([]);
    runs.at(-1)!.push(outputs);
    lastKey = key;
  }
  const records = runs.map((datums) => {
    const fields = Object.fromEntries(
      Object.keys(datums[0]!).map((name) => {
        const dtype = wireDtype(datums[0]![name]!.dtype);
        const parts = datums.map((outputs) => packValues(outputs[name]!.data, dtype));
        const offsets = new BigInt64Array(parts.length + 1);
        const data = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
        parts.forEach((part, index) => {
          data.set(part, Number(offsets[index]));
          offsets[index + 1] = offsets[index]! + BigInt(part.length);
        });
        const trailingShape = datums[0]![name]!.shape.slice(1).map(BigInt);
        return [name, create(BatchedTensorSchema, { data, offsets: littleEndian(offsets), dtype, trailingShape })];
      }),
    );
    return create(ArrayRecordSchema, { typeTag: result.loss_fn_output_type, fields, numDatums: BigInt(datums.length) });
  });
  return toBinary(
    ForwardBackwardOutputSchema,
    create(ForwardBackwardOutputSchema, { lossFnOutputType: result.loss_fn_output_type, lossFnOutputs: records, metrics: result.metrics }),
  );
}

type TopkRows = NonNullable<SampleResult['topk_prompt_logprobs']>;

/** Row-major [rows, k] matrices; rows with fewer than k candidates, or none, fill unused slots. */
function topkMatrix(rows: TopkRows) {
  const k = Math.max(0, ...rows.map((row) => row?.length ?? 0));
  const tokenIds = new Array<number>(rows.length * k).fill(TOPK_UNUSED_TOKEN);
  const logprobs = new Array<number>(rows.length * k).fill(TOPK_UNUSED_LOGPROB);
  rows.forEach((row, position) =>
    row?.forEach(([token, logprob], rank) => {
      tokenIds[position * k + rank] = token;
      logprobs[position * k + rank] = logprob;
    }),
  );
  return create(TopkLogprobsSchema, { tokenIds: int32Bytes(tokenIds), logprobs: float32Bytes(logprobs), k, length: rows.length });
}

const STOP_REASONS: Record<SampleResult['sequences'][number]['finish_reason'], StopReason> = {
  stop: StopReason.STOP,
  length: StopReason.LENGTH,
};

/**
 * A token-level sample result as the SDK's `SampleResponse`: int32 tokens and float32 log-probs
 * per sequence, prompt log-probs with NaN at position 0, and the prompt's top-k when asked for.
 */
export function encodeSampleResponse(result: Pick<SampleResult, 'sequences' | 'prompt_logprobs' | 'topk_prompt_logprobs'>): Uint8Array {
  const sequences = result.sequences.map(({ tokens, logprobs, finish_reason: finishReason }) =>
    create(SampledSequenceSchema, { stopReason: STOP_REASONS[finishReason], tokens: int32Bytes(tokens), logprobs: float32Bytes(logprobs) }),
  );
  return toBinary(
    SampleResponseSchema,
    create(SampleResponseSchema, {
      sequences,
      promptLogprobs: result.prompt_logprobs ? float32Bytes(result.prompt_logprobs) : undefined,
      topkPromptLogprobs: result.topk_prompt_logprobs ? topkMatrix(result.topk_prompt_logprobs) : undefined,
      promptCacheHitTokens: 0,
    }),
  );
}
