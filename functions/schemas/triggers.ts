/** Inbound trigger shapes (DESIGN.md §7a): signed hooks that start a pipeline or a job. */
import { z } from 'zod';
import { nameSchema } from './names.ts';

export const TriggerAction = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('pipeline'), repo: nameSchema('repo'), bake: nameSchema('bake') }).meta({ description: "Runs the bake's missing recreation-plan steps" }),
    z.object({ type: z.enum(['stim', 'rollout']), repo: nameSchema('repo'), target: nameSchema('target') }).meta({ description: "Starts the target's stim or rollout job" }),
    z.object({ type: z.literal('bake'), repo: nameSchema('repo'), bake: nameSchema('bake') }).meta({ description: "Starts the bake's training job" }),
  ])
  .meta({ id: 'TriggerAction' });
export type TriggerAction = z.infer<typeof TriggerAction>;

export const TriggerCreate = z
  .object({
    action: TriggerAction,
    description: z.string().max(500).nullish(),
  })
  .meta({ id: 'TriggerCreate' });

export const TriggerInfo = z
  .object({
    id: z.string(),
    url: z.string().meta({ description: 'Where the sender posts: `{origin}/v1/hooks/{id}`' }),
    action: TriggerAction,
    description: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'TriggerInfo' });

export const TriggerCreated = TriggerInfo.extend({
  secret: z.string().meta({
    description:
      'The signing secret (`whsec_…`), shown only in this response. Standard Webhooks senders use it as it is; for GitHub, paste the whole string as the webhook secret.',
  }),
}).meta({ id: 'TriggerCreated' });

export const TriggerList = z.object({ triggers: z.array(TriggerInfo) }).meta({ id: 'TriggerList' });

const TRIGGER_ID = /^trg_[0-9a-f]{32}$/;
export const TriggerPath = z.object({ trigger_id: z.string().regex(TRIGGER_ID, 'Unknown trigger id format: ids look like trg_ followed by 32 hex digits') });

/** The hook path takes any string: an id of the wrong shape is refused like an unknown one (401). */
export const HookPath = z.object({ trigger_id: z.string() });

export const HookStarted = z
  .object({
    trigger_id: z.string(),
    action: TriggerAction,
    started: z.object({
      kind: z.enum(['pipeline', 'stim', 'rollout', 'bake']),
      repo: z.string(),
      name: z.string().meta({ description: 'The bake (pipeline, bake) or target (stim, rollout)' }),
      status: z.string().meta({ description: "The job's or the pipeline's status right after the start" }),
      job_id: z.number().int().nullable().meta({ description: 'The started job; null for a pipeline, whose steps are jobs of their own' }),
    }),
  })
  .meta({ id: 'HookStarted' });
export type HookStarted = z.infer<typeof HookStarted>;

export const HookPing = z.object({ trigger_id: z.string(), message: z.string() }).meta({ id: 'HookPing' });
