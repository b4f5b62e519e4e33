import type { Key } from '../ports/store.ts';

/**
 * Single-table key composition, written once per entity. Names never contain '#'
 * (functions/core/names.ts), so the separators below cannot be forged.
 */

export type ResourceKind = 'prompt' | 'target' | 'bake';

const RESOURCE_PREFIX: Record<ResourceKind, string> = {
  prompt: 'PROMPT#',
  target: 'TARGET#',
  bake: 'BAKE#',
};

export const keys = {
  user: (userId: string): Key => ({ pk: `USER#${userId}`, sk: 'PROFILE' }),

  repo: (userId: string, repo: string): Key => ({ pk: `USER#${userId}`, sk: `REPO#${repo}` }),
  repoPartition: (userId: string) => ({ pk: `USER#${userId}`, skPrefix: 'REPO#' }),

  /** A dataset the user uploaded (its bytes live in Blobs, functions/core/datasets.ts). */
  dataset: (userId: string, name: string): Key => ({ pk: `USER#${userId}`, sk: `DATASET#${name}` }),
  datasetPartition: (userId: string) => ({ pk: `USER#${userId}`, skPrefix: 'DATASET#' }),

  resource: (userId: string, repo: string, kind: ResourceKind, name: string): Key => ({
    pk: repoPk(userId, repo),
    sk: `${RESOURCE_PREFIX[kind]}${name}`,
  }),
  resourcePartition: (userId: string, repo: string, kind: ResourceKind) => ({
    pk: repoPk(userId, repo),
    skPrefix: RESOURCE_PREFIX[kind],
  }),

  /** Looked up on every request by the hash of the presented key. */
  apiKeyByHash: (hash: string): Key => ({ pk: `APIKEY#${hash}`, sk: 'APIKEY' }),
  /** The management view of a key; indexed per user for listing. */
  apiKeyById: (keyId: string): Key => ({ pk: `KEYID#${keyId}`, sk: 'KEYID' }),
  apiKeyIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#KEYS` }),

  idempotency: (digest: string): Key => ({ pk: `IDEMPOTENCY#${digest}`, sk: 'RESPONSE' }),

  job: (jobId: number): Key => ({ pk: `JOB#${jobId}`, sk: 'JOB' }),
  /** The atomic counter behind job ids: positive, increasing across the deployment. */
  jobCounter: (): Key => ({ pk: 'COUNTER', sk: 'JOB_ID' }),
  /** The slot holding the sampler job of one base model (its current job's owner). */
  sampler: (baseModel: string): Key => ({ pk: `SAMPLER#${baseModel}`, sk: 'SAMPLER' }),
  /** Chat requests waiting for a sampler of the base model, oldest first. */
  chatInbox: (baseModel: string) => ({ pk: `INBOX#${baseModel}`, skPrefix: 'REQ#' }),
  chatRequest: (requestId: string): Key => ({ pk: `CHAT#${requestId}`, sk: 'REQUEST' }),
  /** The numbered pieces of a chat answer, as its sampler posted them. */
  chatChunk: (requestId: string, seq: number): Key => ({ pk: `CHAT#${requestId}`, sk: `CHUNK#${String(seq).padStart(8, '0')}` }),
  /** An inbound trigger, looked up by id alone when its hook is called; indexed per user for listing. */
  trigger: (triggerId: string): Key => ({ pk: `TRIGGER#${triggerId}`, sk: 'TRIGGER' }),
  triggerIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#TRIGGERS` }),
  /** A delivery id a trigger has accepted (Standard Webhooks `webhook-id` or GitHub's delivery id), kept to refuse replays. */
  triggerDelivery: (triggerId: string, scheme: string, deliveryId: string): Key => ({ pk: `TRIGGER#${triggerId}`, sk: `DELIVERY#${scheme}#${deliveryId}` }),
  /** A webhook lives in its user's partition. */
  webhook: (userId: string, webhookId: string): Key => ({ pk: `USER#${userId}`, sk: `WEBHOOK#${webhookId}` }),
  webhookPartition: (userId: string) => ({ pk: `USER#${userId}`, skPrefix: 'WEBHOOK#' }),
  /** A webhook delivery, found by the id its queue message carries. */
  webhookDelivery: (deliveryId: string): Key => ({ pk: `DELIVERY#${deliveryId}`, sk: 'DELIVERY' }),
  /** A webhook's deliveries, newest first by creation time: `gsi1sk` is `<created_at>#<delivery id>`. */
  webhookDeliveryIndex: (webhookId: string) => ({ gsi1pk: `WEBHOOK#${webhookId}#DELIVERIES` }),
  /** One marker per delivery not yet delivered or given up, so the sweep reads only those. */
  pendingWebhookDelivery: (deliveryId: string): Key => ({ pk: 'DELIVERIES#PENDING', sk: deliveryId }),
  pendingWebhookDeliveries: { pk: 'DELIVERIES#PENDING' },
  /** Jobs not yet complete or failed, indexed for the reconciler. */
  activeJobsIndex: { gsi1pk: 'JOBS#ACTIVE' },
  /** Events written with the state change they report, kept until published (events/job-events.ts). */
  outboxEvent: (eventId: string): Key => ({ pk: 'OUTBOX', sk: `EVENT#${eventId}` }),
  outboxPartition: { pk: 'OUTBOX', skPrefix: 'EVENT#' },
  /** The pipeline that builds one bake (core/pipelines); beside its bake, outside the `BAKE#` prefix. */
  pipeline: (userId: string, repo: string, bake: string): Key => ({ pk: repoPk(userId, repo), sk: `PIPELINE#${bake}` }),
  pipelinePartition: (userId: string, repo: string) => ({ pk: repoPk(userId, repo), skPrefix: 'PIPELINE#' }),

  /** Training (core/training): sessions, runs, samplers and checkpoints by id; the ids are base62, free of '#'. */
  trainingSession: (sessionId: string): Key => ({ pk: `TSESSION#${sessionId}`, sk: 'SESSION' }),
  trainingSessionIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#TSESSIONS` }),
  /** A run: its record, and the owner item of its trainer job (the current one and its summary). */
  trainingRun: (runId: string): Key => ({ pk: `TRUN#${runId}`, sk: 'RUN' }),
  trainingRunIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#TRUNS` }),
  /** An operation of a run, by its id (the submit's idempotency key, so it may hold any character). */
  trainingOperation: (runId: string, operationId: string): Key => ({ pk: `TRUN#${runId}`, sk: `OP#${operationId}` }),
  /** The run's operations not yet handed to its trainer, in acceptance order (`seq`). */
  trainingQueueEntry: (runId: string, seq: number): Key => ({ pk: `TRUN#${runId}`, sk: `QUEUE#${String(seq).padStart(12, '0')}` }),
  trainingQueue: (runId: string) => ({ pk: `TRUN#${runId}`, skPrefix: 'QUEUE#' }),
  /** Operations that carry the client's own sequence number and wait for a predecessor before they enter the queue. */
  trainingParkedEntry: (runId: string, clientSeq: number): Key => ({ pk: `TRUN#${runId}`, sk: `PARKED#${String(clientSeq).padStart(12, '0')}` }),
  trainingParked: (runId: string) => ({ pk: `TRUN#${runId}`, skPrefix: 'PARKED#' }),
  /** One row per optimizer step of a run, in the order its optim_step operations were accepted (`seq`). */
  trainingStepMetric: (runId: string, seq: number): Key => ({ pk: `TRUN#${runId}`, sk: `METRIC#${String(seq).padStart(12, '0')}` }),
  trainingStepMetrics: (runId: string) => ({ pk: `TRUN#${runId}`, skPrefix: 'METRIC#' }),
  /** The forward_backward losses and tokens a run accumulated since its last optimizer step. */
  trainingPendingLoss: (runId: string): Key => ({ pk: `TRUN#${runId}`, sk: 'PENDINGLOSS' }),
  /** A front's own name for a run or a sampler (Tinker's `model_id`, `sampling_session_id`), unique across users. */
  trainingRunAlias: (alias: string): Key => ({ pk: `TRUNALIAS#${alias}`, sk: 'RUN' }),
  trainingSamplerAlias: (alias: string): Key => ({ pk: `TSAMPLERALIAS#${alias}`, sk: 'SAMPLER' }),
  /** A checkpoint lives in its run's partition under its target and name; indexed per user for listing. */
  trainingCheckpoint: (runId: string, target: string, name: string): Key => ({ pk: `TRUN#${runId}`, sk: `CKPT#${target}#${name}` }),
  trainingCheckpoints: (runId: string) => ({ pk: `TRUN#${runId}`, skPrefix: 'CKPT#' }),
  trainingCheckpointIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#TCKPTS` }),
  /** Finds a checkpoint by its database id (the files and source routes take it). */
  trainingCheckpointId: (checkpointId: string): Key => ({ pk: `TCKPT#${checkpointId}`, sk: 'CHECKPOINT' }),
  /** The paired sampler of a run: one per run, whoever asks first. */
  trainingRunSampler: (runId: string): Key => ({ pk: `TRUN#${runId}`, sk: 'SAMPLER' }),
  trainingSampler: (samplerId: string): Key => ({ pk: `TSAMPLER#${samplerId}`, sk: 'SAMPLER' }),
  trainingSamplerIndex: (userId: string) => ({ gsi1pk: `USER#${userId}#TSAMPLERS` }),
  /** Runs whose trainer may need looking after by the sweep (active ones), one marker each. */
  activeTrainingRun: (runId: string): Key => ({ pk: 'TRUNS#ACTIVE', sk: runId }),
  activeTrainingRuns: { pk: 'TRUNS#ACTIVE' },
  /** Runs holding checkpoints the retention sweep may delete (ephemeral or expiring ones), one marker each. */
  trainingRetention: (runId: string): Key => ({ pk: 'TRUNS#RETENTION', sk: runId }),
  trainingRetentions: { pk: 'TRUNS#RETENTION' },
  /** Public checkpoints (readable by every user), one marker each, so other users' runs can list them. */
  publicTrainingCheckpoint: (runId: string, target: string, name: string): Key => ({ pk: 'TCKPTS#PUBLIC', sk: `${runId}#${target}#${name}` }),
  publicTrainingCheckpoints: { pk: 'TCKPTS#PUBLIC' },
};

function repoPk(userId: string, repo: string): string {
  return `USER#${userId}#REPO#${repo}`;
}

/** The resource name held in a resource item's sort key. */
export function resourceName(kind: ResourceKind, sk: string): string {
  return sk.slice(RESOURCE_PREFIX[kind].length);
}
