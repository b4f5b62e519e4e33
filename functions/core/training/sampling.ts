/**
 * Token-level sampling for the training protocols (the Loops `/sample`, Tinker's `asample`) on the
 * one sampler engine that also serves chat (DESIGN.md §1): a sample is a token-level request on
 * the chat relay (functions/schemas/relay.ts TokenSamplerRequest), queued for the base model's
 * sampler job like a chat request, and read back as an operation. The relay keeps the request and
 * its answer in the Store for a day, so a result outlives restarts and any one API replica.
 */
import { createHash } from 'node:crypto';
import type { ModelSpec } from '../../schemas/job-spec.ts';
import { SampleRequest, type RelayChunk } from '../../schemas/relay.ts';
import type { Actor } from '../actor.ts';
import type { ChatRelay, ChatRequestStatus } from '../chat/chat-relay.ts';
import type { SamplerPool } from '../chat/sampler-pool.ts';
import type { SamplerWatch, WatchedRequest } from '../chat/sampler-watch.ts';
import { IdempotencyConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors.ts';
import { userFacing } from '../jobs/failure-reasons.ts';
import { canonicalJson } from '../json.ts';
import { parseOrThrow } from '../validation.ts';
import type { OperationView, TrainingSampler } from './model.ts';
import type { SamplerWeights } from './sampler-weights.ts';

export interface SampleSubmission {
  /** The client's key: a retried submit with the same key and body is the same operation. */
  idempotencyKey: string;
  /** A `sampler_weights` checkpoint to sample; null: the sampler's own model. */
  checkpointPath: string | null;
  /** The run a paired client samples for; must be the sampler's. */
  runId: string | null;
  request: SampleRequest;
  /** Where a sampler job started for this request reaches this API's relay routes. */
  relayUrl: string;
}

/** What is kept with the relay request: who may read it and how to find a sampler for it again. */
interface SampleMeta {
  user_id: string;
  sampler_id: string;
  fingerprint: string;
  base_model: string;
  relay_url: string;
  sampler_job_id: number;
}

export interface SamplingParts {
  samplers: { get(actor: Actor, samplerId: string): Promise<TrainingSampler> };
  weights: SamplerWeights;
  /** The sampler's own model when it has no `model_path`: its base model's chain. */
  baseSpec: (sampler: TrainingSampler) => Promise<ModelSpec>;
  relay: ChatRelay;
  pool: SamplerPool;
  watch: SamplerWatch;
  /** How often a held poll checks that a sampler is there to answer. */
  livenessMs: number;
}

const SAMPLER_ERROR_CLASS = 'RuntimeError';

/** The relay request behind an operation: its id is derived, so a retried submit finds the first one. */
function sampleRequestId(samplerId: string, idempotencyKey: string): string {
  return `sample-${createHash('sha256').update(`${samplerId}\n${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}

export class TrainingSampling {
  constructor(private readonly parts: SamplingParts) {}

  /**
   * Accepts a sample: resolves the weights, queues it once per (sampler, key), and makes sure the
   * base model has a sampler job. The operation id is the idempotency key.
   */
  async submit(actor: Actor, samplerId: string, submission: SampleSubmission): Promise<{ operationId: string }> {
    const { samplers, relay, pool } = this.parts;
    const sampler = await samplers.get(actor, samplerId);
    const { idempotencyKey, checkpointPath, runId, relayUrl } = submission;
    // Checked here, not when a sampler takes it: a request the relay cannot hand out would stall its inbox.
    const request = parseOrThrow(SampleRequest, submission.request);
    if (runId !== null && runId !== sampler.runId) {
      throw new ValidationError(`Run '${runId}' is not the run of sampler '${sampler.id}'; sample with the sampler paired with that run.`);
    }
    const requestId = sampleRequestId(sampler.id, idempotencyKey);
    const fingerprint = createHash('sha256').update(canonicalJson({ checkpointPath, runId, request })).digest('hex');
    const existing = await relay.status(requestId);
    if (existing) return deduplicated(existing, fingerprint, idempotencyKey);
    const model = await this.modelFor(actor, sampler, checkpointPath);
    const job = await pool.ensure(model.base_model, relayUrl);
    const meta: SampleMeta = { user_id: actor.userId, sampler_id: sampler.id, fingerprint, base_model: model.base_model, relay_url: relayUrl, sampler_job_id: job.job_id };
    if (!(await relay.submit({ kind: 'tokens', id: requestId, model, sample: request }, { ...meta }))) {
      // A concurrent submit with the same key won the race.
      const winner = await relay.status(requestId);
      if (winner) return deduplicated(winner, fingerprint, idempotencyKey);
    }
    return { operationId: idempotencyKey };
  }

  /**
   * The operation's state, held up to `holdMs` while it is pending; undefined for an id that is
   * unknown, expired, or not the caller's on this sampler. A sampler that fails (or cannot start)
   * ends the operation with its reason.
   */
  async poll(actor: Actor, samplerId: string, operationId: string, options: { holdMs: number; signal?: AbortSignal }): Promise<OperationView | undefined> {
    const { relay, watch, livenessMs } = this.parts;
    const requestId = sampleRequestId(samplerId, operationId);
    const meta = metaOf(await relay.status(requestId), actor, samplerId);
    if (!meta) return undefined;
    const watched: WatchedRequest = { id: requestId, baseModel: meta.base_model, relayUrl: meta.relay_url, samplerJobId: meta.sampler_job_id };
    const deadline = Date.now() + options.holdMs;
    let nextCheck = Date.now();
    for (;;) {
      const answer = await relay.chunk(requestId, 0);
      if (answer) return view(answer);
      if (Date.now() >= nextCheck) {
        try {
          await watch.check(watched, 0);
        } catch (error) {
          if (!(error instanceof UnavailableError)) throw error;
          // Settled for good: a sampler started later must not run it behind the client's back.
          await relay.cancel(requestId, meta.base_model, error.message);
          return (await relay.chunk(requestId, 0).then((late) => late && view(late))) ?? { status: 'error', error: error.message, errorClass: SAMPLER_ERROR_CLASS };
        }
        if (watched.samplerJobId !== meta.sampler_job_id) {
          meta.sampler_job_id = watched.samplerJobId;
          await relay.annotate(requestId, { sampler_job_id: watched.samplerJobId });
        }
        nextCheck = Date.now() + livenessMs;
      }
      if (Date.now() >= deadline || options.signal?.aborted) return { status: 'pending' };
      await relay.untilRequestChanges(requestId, options.signal);
    }
  }

  /** 'cancelled': it was still queued and is dropped; 'running': a sampler has it (or had it) and it finishes; undefined: unknown. */
  async cancel(actor: Actor, samplerId: string, operationId: string): Promise<'cancelled' | 'running' | undefined> {
    const { relay } = this.parts;
    const requestId = sampleRequestId(samplerId, operationId);
    const status = await relay.status(requestId);
    const meta = metaOf(status, actor, samplerId);
    if (!status || !meta) return undefined;
    if (status.state === 'cancelled') return (await relay.chunk(requestId, 0)) ? 'running' : 'cancelled';
    return (await relay.cancelIfPending(requestId, meta.base_model)) ? 'cancelled' : 'running';
  }

  /** The checkpoint at `checkpointPath`, else the sampler's own model (the checkpoint it was made from, or its base model). */
  private async modelFor(actor: Actor, sampler: TrainingSampler, checkpointPath: string | null): Promise<ModelSpec> {
    const { weights, baseSpec } = this.parts;
    const path = checkpointPath ?? sampler.modelPath;
    if (path === null) return baseSpec(sampler);
    let checkpoint;
    try {
      checkpoint = await weights.resolve(actor, path);
    } catch (error) {
      if (error instanceof NotFoundError && path === sampler.modelPath) {
        throw new NotFoundError(`The checkpoint ${path} this sampler was made from no longer exists; create a sampler from a checkpoint you have.`);
      }
      throw error;
    }
    if (checkpoint.baseModel !== sampler.baseModel) {
      throw new ValidationError(`${path} was trained on ${checkpoint.baseModel}, but sampler '${sampler.id}' serves ${sampler.baseModel}; sample it with a sampler of ${checkpoint.baseModel}.`);
    }
    return weights.serve(checkpoint);
  }
}

function metaOf(status: ChatRequestStatus | undefined, actor: Actor, samplerId: string): SampleMeta | undefined {
  const meta = status?.meta as Partial<SampleMeta> | undefined;
  return meta?.user_id === actor.userId && meta.sampler_id === samplerId ? (meta as SampleMeta) : undefined;
}

function deduplicated(existing: ChatRequestStatus, fingerprint: string, idempotencyKey: string): { operationId: string } {
  if (existing.meta.fingerprint !== fingerprint) {
    throw new IdempotencyConflictError(`Idempotency-Key '${idempotencyKey}' was already used for a different sample request; send a new key for a new request.`);
  }
  return { operationId: idempotencyKey };
}

function view(answer: RelayChunk): OperationView {
  if (answer.sampled) return { status: 'done', result: answer.sampled };
  // The sampler words its errors for users; this guards against one carrying a path.
  const error = answer.error === null ? 'The sampler answered without any tokens; submit the sample again.' : userFacing(answer.error);
  return { status: 'error', error, errorClass: SAMPLER_ERROR_CLASS };
}
