/**
 * Pipelines (beyond the Bread API, in its style): one call that runs every missing job of a
 * bake's recreation plan in dependency order (functions/core/pipelines/pipelines.ts).
 */
import { z } from 'zod';

export const PIPELINE_STATUSES = ['running', 'complete', 'failed'] as const;
export type PipelineStatus = (typeof PIPELINE_STATUSES)[number];

export const PIPELINE_STEP_STATUSES = ['pending', 'running', 'complete', 'failed'] as const;
export type PipelineStepStatus = (typeof PIPELINE_STEP_STATUSES)[number];

export const PipelineStep = z
  .object({
    kind: z.enum(['stim', 'rollout', 'bake']).meta({ description: 'The job this step runs' }),
    name: z.string().meta({ description: 'The target (stim, rollout) or bake the job belongs to' }),
    status: z.enum(PIPELINE_STEP_STATUSES).meta({
      description: '`pending` until the pipeline reaches it; a step whose job had already completed shows `complete` with that job',
    }),
    job_id: z.number().int().nullable().meta({ description: 'The job the step follows, once started' }),
    error: z.string().nullable().meta({ description: "The job's error when the step failed" }),
  })
  .meta({ id: 'PipelineStep' });
export type PipelineStep = z.infer<typeof PipelineStep>;

export const PipelineResponse = z
  .object({
    status: z.enum(PIPELINE_STATUSES),
    steps: z.array(PipelineStep).meta({ description: 'Stim then rollout of each dataset target, parent bakes first, then the bake' }),
    error: z.string().nullable().meta({ description: "Why the pipeline stopped: the failed step's error" }),
  })
  .meta({ id: 'PipelineResponse' });
export type PipelineResponse = z.infer<typeof PipelineResponse>;
