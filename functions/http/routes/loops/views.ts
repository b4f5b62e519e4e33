/**
 * The training service's records as the Loops control plane shows them (loops-api.md §1.4,
 * loops-data-plane.md §4 and §12.1): the fields the SDK validates, never null where it needs a value.
 */
import type { Actor } from '#core/actor.ts';
import type { TrainingCheckpoint, TrainingRun, TrainingSampler, TrainingSession, TrainOrSampleTarget } from '#core/training/model.ts';
import type { RunFilter } from '#core/training/runs.ts';
import type { TrainingService } from '#core/training/training-service.ts';
import type { LoopsCheckpoint, LoopsDeployment, LoopsRun, LoopsSampler } from '#schemas/loops.ts';

/** Where the SDK reaches a run's trainer and a sampler: built from the data plane's public origin. */
export const trainerBaseUrl = (origin: string, runId: string) => `${origin}/loops/trainers/${runId}`;
export const samplerBaseUrl = (origin: string, samplerId: string) => `${origin}/loops/samplers/${samplerId}`;

const userOf = (userId: string) => ({ id: userId, email: null });

/** A paired sampler lives and dies with its run; a standalone one is always active. */
export function samplerView(sampler: TrainingSampler, origin: string, run?: Pick<TrainingRun, 'state'>): LoopsSampler {
  return {
    id: sampler.id,
    base_url: samplerBaseUrl(origin, sampler.id),
    base_model: sampler.baseModel,
    created_at: sampler.createdAt,
    model_id: null,
    deployment_id: null,
    status: { name: !run || run.state === 'active' ? 'ACTIVE' : 'INACTIVE' },
    user: userOf(sampler.userId),
    node_count: 1,
    base_checkpoint: null,
    run_id: sampler.runId,
    model_path: sampler.modelPath,
  };
}

export function runView(run: TrainingRun, origin: string, sampler: TrainingSampler | undefined): LoopsRun {
  return {
    id: run.id,
    session_id: run.sessionId,
    deployment_id: null,
    name: run.name ?? run.baseModel,
    base_model: run.baseModel,
    base_url: trainerBaseUrl(origin, run.id),
    created_at: run.createdAt,
    status: { name: run.state === 'active' ? 'ACTIVE' : 'INACTIVE' },
    user: userOf(run.userId),
    base_checkpoint: null,
    lora_rank: run.loraRank,
    availability_model: run.availabilityModel,
    scale_down_delay_seconds: run.scaleDownDelaySeconds,
    sampler: sampler ? samplerView(sampler, origin, run) : null,
  };
}

export function checkpointView(checkpoint: TrainingCheckpoint<TrainOrSampleTarget>): LoopsCheckpoint {
  return {
    id: checkpoint.id,
    run_id: checkpoint.runId,
    target: checkpoint.target,
    checkpoint_id: checkpoint.name,
    created_at: checkpoint.createdAt,
    checkpoint_type: 'lora',
    base_model: checkpoint.baseModel,
    lora_adapter_config: checkpoint.loraConfig,
    size_bytes: checkpoint.sizeBytes,
    // Saves complete only once their files are durable (loops-api.md §1.6).
    sync_status: 'COMPLETE',
  };
}

const DEPLOYMENT_STATUS: Record<TrainingRun['phase'], LoopsDeployment['status']['name']> = { starting: 'DEPLOYING', ready: 'RUNNING', scaled_to_zero: 'SCALED_TO_ZERO' };

/** A deployment is a run and its sampler; its id is the run's. */
export function deploymentView(run: TrainingRun, origin: string, sampler: TrainingSampler | undefined): LoopsDeployment {
  const status = run.state === 'inactive' ? 'STOPPED' : run.state === 'failed' ? 'FAILED' : DEPLOYMENT_STATUS[run.phase];
  return {
    id: run.id,
    active_run_id: run.state === 'active' ? run.id : null,
    latest_run_id: run.id,
    base_model: run.baseModel,
    base_url: trainerBaseUrl(origin, run.id),
    status: { name: status },
    user: userOf(run.userId),
    created_at: run.createdAt,
    availability_model: run.availabilityModel,
    // The compute environment decides the hardware; the numbers are not known here.
    instance_type: { id: 'trainer', name: 'Bakehouse trainer', memory_limit_mib: null, millicpu_limit: null, gpu_count: 1, gpu_type: null, gpu_memory_limit_mib: null },
    node_count: 1,
    sampler: sampler ? samplerView(sampler, origin, run) : null,
  };
}

/** One page of a checkpoint's files, each presigned; one node writes them all (`node_rank` 0). */
export function filesView(page: { files: { url: string; relative_file_name: string; size_bytes: number; last_modified: string }[]; nextPageToken: number | null; totalCount: number }) {
  return { presigned_urls: page.files.map((file) => ({ ...file, node_rank: 0 })), next_page_token: page.nextPageToken, total_count: page.totalCount };
}

export function sessionView(session: TrainingSession) {
  return { id: session.id, training_project_id: session.trainingProjectId, created_at: session.createdAt };
}

/** The caller's runs that match `filter`, each with its paired sampler if it has one yet. */
export async function runsWithSamplers(training: TrainingService, actor: Actor, filter: RunFilter): Promise<{ run: TrainingRun; sampler: TrainingSampler | undefined }[]> {
  const [runs, samplers] = await Promise.all([training.runs.list(actor, filter), training.samplers.list(actor)]);
  const paired = new Map(samplers.flatMap((sampler) => (sampler.runId ? [[sampler.runId, sampler] as const] : [])));
  return runs.map((run) => ({ run, sampler: paired.get(run.id) }));
}
