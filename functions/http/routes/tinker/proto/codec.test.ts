/**
 * The Tinker protobuf codec against the stock tinker SDK's own protobuf code: the schema is the
 * SDK's descriptor byte for byte, requests the SDK encoded (fixtures/, written by
 * test/clients/tinker/proto_conformance.py from tinker 0.38.0) decode to what they carry, and
 * results encoded here decode in the SDK (0.25.0 and 0.38.0, run live) to what was encoded.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { clearField, clone, create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  DescriptorProtoSchema,
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type DescriptorProto,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '#core/errors.ts';
import { TINKER_CLIENT_DIR, tinkerPython, type TinkerVersion } from '#test/clients/tinker/environments.ts';
import {
  decodeForwardBackwardRequest,
  encodeForwardBackwardOutput,
  encodeSampleResponse,
  TOPK_UNUSED_LOGPROB,
  type ForwardBackwardOutputBody,
} from './codec.ts';
import {
  ChunkSchema,
  DType,
  ForwardBackwardOutputSchema,
  ForwardBackwardRequestSchema,
  ImageChunkSchema,
  LossConfigValueSchema,
  DatumSchema,
  EncodedTextChunkSchema,
  SampleResponseSchema,
  SparseCsrSchema,
  TensorSchema,
  file_tinker_public,
} from './tinker_public_pb.ts';

const exec = promisify(execFile);
const FIXTURES = join(import.meta.dirname, 'fixtures');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, name)));
const workDir = mkdtempSync(join(tmpdir(), 'bakehouse-tinker-proto-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** What the SDK at `version` makes of bytes encoded here (proto_conformance.py decode). */
async function sdkDecode(version: TinkerVersion, kind: 'sample' | 'forward_backward', bytes: Uint8Array): Promise<unknown> {
  const file = join(workDir, `${kind}-${version}-${Math.random().toString(36).slice(2)}.binpb`);
  writeFileSync(file, bytes);
  const { stdout } = await exec(tinkerPython(version), [join(TINKER_CLIENT_DIR, 'proto_conformance.py'), 'decode', kind, file]);
  return JSON.parse(stdout);
}

function validationMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error('expected a ValidationError');
}

const float32 = (value: number) => Math.fround(value);
const f32LE = (...values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const i32LE = (...values: number[]) => new Uint8Array(Int32Array.from(values).buffer);
const i64LE = (...values: number[]) => new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);

function requestWith(datum: Parameters<typeof create<typeof DatumSchema>>[1]): Uint8Array {
  return toBinary(ForwardBackwardRequestSchema, create(ForwardBackwardRequestSchema, { modelId: 'm', seqId: 1, lossFn: 'cross_entropy', data: [create(DatumSchema, datum)] }));
}
const textChunk = (...tokens: number[]) => create(ChunkSchema, { chunk: { case: 'encodedText', value: create(EncodedTextChunkSchema, { tokens: i32LE(...tokens) }) } });

/**
 * A descriptor as protoc serialises it into a `_pb2.py`: the schema only, without the JSON names
 * and option defaults that compilers and runtimes fill in.
 */
function schemaBytes(descriptor: FileDescriptorProto): Buffer {
  const messages = (types: DescriptorProto[]): DescriptorProto[] =>
    types.map((type) =>
      create(DescriptorProtoSchema, {
        ...type,
        field: type.field.map((field) => {
          const schemaOnly = clone(FieldDescriptorProtoSchema, field);
          clearField(schemaOnly, FieldDescriptorProtoSchema.field.jsonName);
          return schemaOnly;
        }),
        nestedType: messages(type.nestedType),
      }),
    );
  const { name, package: pkg, messageType, enumType, syntax } = descriptor;
  return Buffer.from(toBinary(FileDescriptorProtoSchema, create(FileDescriptorProtoSchema, { name, package: pkg, messageType: messages(messageType), enumType, syntax })));
}

describe('the schema', () => {
  const sdkDescriptor = Buffer.from(fixture('sdk-descriptor.binpb'));

  it('is the descriptor of tinker 0.38.0 (tinker_public_pb2.py) byte for byte', () => {
    expect(schemaBytes(file_tinker_public.proto)).toEqual(sdkDescriptor);
  });

  it('is what tinker_public.proto compiles to, so the generated code is current', async () => {
    const { stdout } = await exec(
      join('node_modules', '.bin', 'buf'),
      ['build', import.meta.dirname, '--exclude-source-info', '--exclude-imports', '-o', '-#format=binpb'],
      { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 },
    );
    const [compiled] = fromBinary(FileDescriptorSetSchema, new Uint8Array(stdout)).file;
    expect(schemaBytes(compiled!)).toEqual(sdkDescriptor);
  });
});

describe('decodeForwardBackwardRequest', () => {
  for (const name of ['cross_entropy', 'sparse_forward_only', 'ppo_config']) {
    const expected = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8'));
    it(`reads the SDK's ${name} request, plain and zstd-compressed, with CSR tensors dense`, () => {
      expect(decodeForwardBackwardRequest(fixture(`${name}.binpb`))).toEqual(expected);
      expect(decodeForwardBackwardRequest(fixture(`${name}.binpb`), 'identity')).toEqual(expected);
      expect(decodeForwardBackwardRequest(fixture(`${name}.binpb.zst`), 'zstd')).toEqual(expected);
      expect(decodeForwardBackwardRequest(fixture(`${name}.binpb.zst`), ' ZSTD ')).toEqual(expected);
    });
  }

  it('prefers loss_fn_config_v2, which alone carries texts, over the numeric map', () => {
    const body = toBinary(
      ForwardBackwardRequestSchema,
      create(ForwardBackwardRequestSchema, {
        modelId: 'm',
        seqId: 3,
        lossFn: 'ppo',
        data: [create(DatumSchema, { modelInput: [textChunk(1, 2)] })],
        lossFnConfig: { clip_low_threshold: 0.5 },
        lossFnConfigV2: {
          clip_low_threshold: create(LossConfigValueSchema, { value: { case: 'number', value: 0.8 } }),
          variant: create(LossConfigValueSchema, { value: { case: 'text', value: 'token' } }),
        },
      }),
    );
    expect(decodeForwardBackwardRequest(body).loss_fn_config).toEqual({ clip_low_threshold: 0.8, variant: 'token' });
  });

  it('widens int32 to int64 and bfloat16 to float32, as the SDK does', () => {
    const bfloat16 = new Uint8Array(Uint16Array.of(0x3fc0, 0xc000).buffer); // 1.5, -2
    const decoded = decodeForwardBackwardRequest(
      requestWith({
        modelInput: [textChunk(5, 6)],
        lossFnInputs: {
          target_tokens: create(TensorSchema, { dtype: DType.DTYPE_INT32, shape: [2n], encoding: { case: 'dense', value: i32LE(6, 7) } }),
          weights: create(TensorSchema, { dtype: DType.DTYPE_BFLOAT16, encoding: { case: 'dense', value: bfloat16 } }),
        },
      }),
    );
    expect(decoded.data[0]!.loss_fn_inputs).toEqual({
      target_tokens: { data: [6, 7], dtype: 'int64', shape: [2] },
      weights: { data: [1.5, -2], dtype: 'float32', shape: [2] },
    });
  });

  it('refuses what it cannot read with a sentence saying what to send instead', () => {
    expect(validationMessage(() => decodeForwardBackwardRequest(fixture('cross_entropy.binpb'), 'gzip'))).toBe(
      'Content-Encoding gzip is not supported; send the body uncompressed or with Content-Encoding: zstd.',
    );
    expect(validationMessage(() => decodeForwardBackwardRequest(fixture('cross_entropy.binpb'), 'zstd'))).toMatch(/not valid zstd data/);
    expect(validationMessage(() => decodeForwardBackwardRequest(fixture('oversized.binpb.zst'), 'zstd'))).toBe(
      'The zstd body expands to more than 64 MiB; split the batch into smaller forward_backward calls.',
    );
    expect(validationMessage(() => decodeForwardBackwardRequest(new TextEncoder().encode('{"model_id": "m"}')))).toMatch(
      /^The forward_backward body is not a protobuf tinker_public.ForwardBackwardRequest; .*Content-Type: application\/json\.$/,
    );
    const image = create(ChunkSchema, { chunk: { case: 'image', value: create(ImageChunkSchema, { data: new Uint8Array(4), format: 'png' }) } });
    expect(validationMessage(() => decodeForwardBackwardRequest(requestWith({ modelInput: [textChunk(1), image] })))).toBe(
      'data.0.model_input: image chunks are not supported; send encoded_text chunks only.',
    );
    expect(validationMessage(() => decodeForwardBackwardRequest(requestWith({ modelInput: [] })))).toBe('data.0.model_input must hold at least one token.');
    expect(
      validationMessage(() => decodeForwardBackwardRequest(requestWith({ modelInput: [create(ChunkSchema, { chunk: { case: 'encodedText', value: create(EncodedTextChunkSchema, { tokens: new Uint8Array(3) }) } })] }))),
    ).toBe('data.0.model_input tokens holds 3 bytes, not a whole number of 4-byte values.');
    const tensor = (fields: Parameters<typeof create<typeof TensorSchema>>[1]) =>
      validationMessage(() => decodeForwardBackwardRequest(requestWith({ modelInput: [textChunk(1, 2)], lossFnInputs: { weights: create(TensorSchema, fields) } })));
    expect(tensor({ dtype: DType.DTYPE_FLOAT32, shape: [3n], encoding: { case: 'dense', value: f32LE(1, 2) } })).toBe(
      'data.0.loss_fn_inputs.weights: shape 3 does not hold its 2 values.',
    );
    expect(tensor({ dtype: DType.DTYPE_UNSPECIFIED, encoding: { case: 'dense', value: f32LE(1) } })).toBe(
      'data.0.loss_fn_inputs.weights: dtype DTYPE_UNSPECIFIED is not supported; send float32 or int64.',
    );
    expect(tensor({ dtype: DType.DTYPE_FLOAT32, shape: [2n] })).toBe('data.0.loss_fn_inputs.weights: the tensor has neither dense nor sparse_csr data.');
    const csr = (crow: number[], col: number[], shape: bigint[] = [2n, 3n]) =>
      tensor({
        dtype: DType.DTYPE_FLOAT32,
        shape,
        encoding: { case: 'sparseCsr', value: create(SparseCsrSchema, { values: f32LE(1, 2), crowIndices: i64LE(...crow), colIndices: i64LE(...col) }) },
      });
    expect(csr([0, 1, 2], [0, 3])).toBe('data.0.loss_fn_inputs.weights: the sparse CSR indices do not describe a 2×3 tensor with 2 values.');
    expect(csr([0, 2, 1], [0, 1])).toMatch(/do not describe a 2×3 tensor/);
    expect(csr([0, 1, 3], [0, 1])).toMatch(/do not describe a 2×3 tensor/);
    expect(csr([0, 1, 2], [0, 1], [4n])).toBe('data.0.loss_fn_inputs.weights: a sparse CSR tensor needs a two-dimensional shape, not [4].');
    // The well-formed one, for contrast.
    expect(decodeForwardBackwardRequest(requestWith({
      modelInput: [textChunk(1, 2)],
      lossFnInputs: { weights: create(TensorSchema, { dtype: DType.DTYPE_FLOAT32, shape: [2n, 3n], encoding: { case: 'sparseCsr', value: create(SparseCsrSchema, { values: f32LE(1, 2), crowIndices: i64LE(0, 1, 2), colIndices: i64LE(2, 0) }) } }) },
    })).data[0]!.loss_fn_inputs.weights).toEqual({ data: [0, 0, 1, 2, 0, 0], dtype: 'float32', shape: [2, 3] });
  });
});

const forwardResult: ForwardBackwardOutputBody = {
  loss_fn_output_type: 'ArrayRecord',
  loss_fn_outputs: [
    { logprobs: { data: [-0.25, null, -3.5], dtype: 'float32', shape: [3] }, elementwise_loss: { data: [0, 1.5, 2], dtype: 'float32', shape: [3] } },
    { logprobs: { data: [-1], dtype: 'float32', shape: [1] }, elementwise_loss: { data: [0.5], dtype: 'float32', shape: [1] } },
    // Another trailing shape: a record of its own.
    {
      logprobs: { data: [-0.5, -1.5, -2.5, -3.5], dtype: 'float32', shape: [2, 2] },
      elementwise_loss: { data: [1, 2], dtype: 'float32', shape: [2] },
    },
  ],
  metrics: { 'loss:sum': 7.25, 'tokens:sum': 6 },
};

describe('encodeForwardBackwardOutput', () => {
  it('packs each field of a run of datums as one BatchedTensor with byte offsets', () => {
    const message = fromBinary(ForwardBackwardOutputSchema, encodeForwardBackwardOutput(forwardResult));
    expect(message.lossFnOutputs.map(({ numDatums }) => numDatums)).toEqual([2n, 1n]);
    const logprobs = message.lossFnOutputs[0]!.fields.logprobs!;
    expect(logprobs.dtype).toBe(DType.DTYPE_FLOAT32);
    expect(logprobs.trailingShape).toEqual([]);
    expect([...new BigInt64Array(logprobs.offsets.slice().buffer)]).toEqual([0n, 12n, 16n]);
    expect(message.lossFnOutputs[1]!.fields.logprobs!.trailingShape).toEqual([2n]);
    expect(message.metrics).toEqual(forwardResult.metrics);
  });

  for (const version of ['0.25.0', '0.38.0'] as const) {
    it(`decodes in tinker ${version} to the outputs and metrics encoded`, async () => {
      const decoded = await sdkDecode(version, 'forward_backward', encodeForwardBackwardOutput(forwardResult));
      expect(decoded).toEqual({
        loss_fn_output_type: 'ArrayRecord',
        metrics: forwardResult.metrics,
        loss_fn_outputs: forwardResult.loss_fn_outputs.map((outputs) =>
          Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, { ...tensor, data: tensor.data.map((value) => (value === null ? null : float32(value))) }])),
        ),
      });
    });
  }

  it('sends int64 fields as int64, and an empty batch as an ArrayRecord with no outputs', async () => {
    const withTokens = encodeForwardBackwardOutput({
      loss_fn_output_type: 'ArrayRecord',
      loss_fn_outputs: [{ top_k_token_ids: { data: [70000, 2, 3, 4], dtype: 'int64', shape: [2, 2] } }],
      metrics: { 'loss:sum': 0 },
    });
    expect(await sdkDecode('0.38.0', 'forward_backward', withTokens)).toMatchObject({
      loss_fn_outputs: [{ top_k_token_ids: { data: [70000, 2, 3, 4], dtype: 'int64', shape: [2, 2] } }],
    });
    const empty = encodeForwardBackwardOutput({ loss_fn_output_type: 'ArrayRecord', loss_fn_outputs: [], metrics: { 'loss:sum': 0 } });
    expect(await sdkDecode('0.38.0', 'forward_backward', empty)).toEqual({ loss_fn_output_type: 'ArrayRecord', loss_fn_outputs: [], metrics: { 'loss:sum': 0 } });
  });
});

const sampleResult = {
  sequences: [
    { tokens: [5, 70000, 2], logprobs: [-0.5, -1.25, -0.125], finish_reason: 'stop' as const },
    { tokens: [9], logprobs: [-2.5], finish_reason: 'length' as const },
  ],
  prompt_logprobs: [null, -1.5, -0.75],
  topk_prompt_logprobs: [
    null,
    [
      [7, -0.25],
      [8, -1.5],
    ] as [number, number][],
    [[4, -0.5]] as [number, number][],
  ],
};

describe('encodeSampleResponse', () => {
  it('writes int32 tokens, float32 log-probs, NaN at prompt position 0 and padded top-k rows', () => {
    const message = fromBinary(SampleResponseSchema, encodeSampleResponse(sampleResult));
    expect([...new Int32Array(message.sequences[0]!.tokens.slice().buffer)]).toEqual([5, 70000, 2]);
    expect(Number.isNaN(new Float32Array(message.promptLogprobs!.slice().buffer)[0])).toBe(true);
    expect(message.topkPromptLogprobs).toMatchObject({ k: 2, length: 3 });
    expect([...new Int32Array(message.topkPromptLogprobs!.tokenIds.slice().buffer)]).toEqual([0, 0, 7, 8, 4, 0]);
    expect([...new Float32Array(message.topkPromptLogprobs!.logprobs.slice().buffer)]).toEqual([
      TOPK_UNUSED_LOGPROB, TOPK_UNUSED_LOGPROB, -0.25, -1.5, -0.5, TOPK_UNUSED_LOGPROB,
    ]);
  });

  for (const version of ['0.25.0', '0.38.0'] as const) {
    it(`decodes in tinker ${version} to the sequences, prompt log-probs and top-k encoded`, async () => {
      expect(await sdkDecode(version, 'sample', encodeSampleResponse(sampleResult))).toEqual({
        sequences: [
          { stop_reason: 'stop', tokens: [5, 70000, 2], logprobs: [-0.5, -1.25, -0.125] },
          { stop_reason: 'length', tokens: [9], logprobs: [-2.5] },
        ],
        prompt_logprobs: [null, -1.5, -0.75],
        topk_prompt_logprobs: [
          null,
          [
            [7, -0.25],
            [8, -1.5],
          ],
          [[4, -0.5]],
        ],
      });
    });
  }

  it('leaves prompt log-probs and top-k out when they were not asked for', async () => {
    const plain = encodeSampleResponse({ ...sampleResult, prompt_logprobs: null, topk_prompt_logprobs: null });
    const message = fromBinary(SampleResponseSchema, plain);
    expect(message.promptLogprobs).toBeUndefined();
    expect(message.topkPromptLogprobs).toBeUndefined();
    expect(await sdkDecode('0.38.0', 'sample', plain)).toMatchObject({ prompt_logprobs: null, topk_prompt_logprobs: null });
  });
});
