/**
 * The payloads of the events of functions/core/events/events.ts, as webhooks deliver them
 * (DESIGN.md §7a): `{type, version, timestamp, data}`, one schema per event type. `version` is
 * bumped when a payload changes incompatibly; fields may be added within a version.
 */
import { z } from 'zod';
import type { DomainEvent, EventType } from '../core/events/events.ts';
import { LossSummary } from './bread.ts';

export const EVENT_PAYLOAD_VERSION = 1;

const Repo = z.string().meta({ description: 'The repo the resource belongs to' });
const JobId = z.number().int().meta({ description: 'The job, as `job_id` in the job status routes' });
const JobError = z.string().nullable().meta({ description: 'Why the job failed; null otherwise' });

const targetJob = (status: 'running' | 'complete' | 'failed') =>
  z.object({ repo: Repo, target: z.string(), job_id: JobId, status: z.literal(status), error: JobError });

const bakeJob = (status: 'running' | 'complete' | 'failed') =>
  z.object({
    repo: Repo,
    bake: z.string(),
    job_id: JobId,
    status: z.literal(status),
    error: JobError,
    model_names: z.array(z.string()).meta({ description: 'The checkpoints as model names `user/repo/bake/<step>`, newest first; empty until complete' }),
    loss: LossSummary.nullable().meta({ description: 'The loss summary once complete; null otherwise' }),
  });

const pipeline = (status: 'complete' | 'failed') =>
  z.object({
    repo: Repo,
    bake: z.string().meta({ description: 'The bake the pipeline builds' }),
    status: z.literal(status),
    error: z.string().nullable().meta({ description: "The failed step's error; null when complete" }),
    steps: z.array(z.object({ kind: z.enum(['stim', 'rollout', 'bake']), name: z.string(), status: z.string(), job_id: z.number().int().nullable(), error: z.string().nullable() })),
  });

/** Training runs and checkpoints (shared/spec/loops-api.md LoopsRunV1, LoopsCheckpointV1). */
const RunData = z.object({
  run_id: z.string(),
  base_model: z.string(),
  status: z.string().meta({ description: 'The run status name (ACTIVE, INACTIVE) or deployment status it reached' }),
  error: z.string().nullable(),
});

const CheckpointData = z.object({
  run_id: z.string(),
  checkpoint_id: z.string().meta({ description: 'The checkpoint name, e.g. `step-1`' }),
  target: z.enum(['sampler', 'trainer', 'external']).meta({ description: 'external: weights exported for download (Tinker save_weights_external)' }),
  path: z.string().meta({ description: '`bt://loops:<run_id>/weights/<name>`, `…/sampler_weights/<name>` or `…/external_weights/<name>`' }),
  created_at: z.string(),
});

const WebhookTestData = z.object({
  webhook_id: z.string().meta({ description: 'The webhook the test was sent to' }),
  message: z.string(),
});

const DATA: Record<EventType, z.ZodObject> = {
  'stim.started': targetJob('running'),
  'stim.completed': targetJob('complete'),
  'stim.failed': targetJob('failed'),
  'rollout.started': targetJob('running'),
  'rollout.completed': targetJob('complete'),
  'rollout.failed': targetJob('failed'),
  'bake.started': bakeJob('running'),
  'bake.completed': bakeJob('complete'),
  'bake.failed': bakeJob('failed'),
  'pipeline.completed': pipeline('complete'),
  'pipeline.failed': pipeline('failed'),
  'run.created': RunData,
  'run.ready': RunData,
  'run.stopped': RunData,
  'run.failed': RunData,
  'checkpoint.saved': CheckpointData,
  'webhook.test': WebhookTestData,
};

export const EVENT_TYPES = Object.keys(DATA) as EventType[];

/** The schema id of an event type's payload, e.g. `StimCompletedEventV1`. */
export function eventSchemaId(type: EventType): string {
  const words = type.split(/[._]/).map((word) => word[0]!.toUpperCase() + word.slice(1));
  return `${words.join('')}EventV${EVENT_PAYLOAD_VERSION}`;
}

const payloadSchema = (type: EventType) =>
  z
    .object({
      type: z.literal(type),
      version: z.literal(EVENT_PAYLOAD_VERSION),
      timestamp: z.string().meta({ description: 'ISO 8601: when it happened' }),
      data: DATA[type],
    })
    .meta({ id: eventSchemaId(type), description: `The \`${type}\` event, as webhooks deliver it` });

/** One payload schema per event type, each with its OpenAPI component id. */
export const EVENT_PAYLOADS = Object.fromEntries(EVENT_TYPES.map((type) => [type, payloadSchema(type)])) as Record<EventType, ReturnType<typeof payloadSchema>>;

/** Any event payload, told apart by `type`. */
export const EventPayload = z
  .discriminatedUnion('type', EVENT_TYPES.map((type) => EVENT_PAYLOADS[type]) as [ReturnType<typeof payloadSchema>, ...ReturnType<typeof payloadSchema>[]])
  .meta({ id: 'EventPayload' });
export type EventPayload = z.infer<typeof EventPayload>;

/** The body a subscriber receives for an event. */
export function eventPayload(event: DomainEvent): EventPayload {
  return { type: event.type, version: EVENT_PAYLOAD_VERSION, timestamp: event.timestamp, data: event.data } as EventPayload;
}
