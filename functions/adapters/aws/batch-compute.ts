/**
 * BatchCompute: the Compute port on AWS Batch. Stim jobs (LLM calls, no GPU) run on the CPU job
 * queue; rollouts, samplers and trainers on the GPU queue; bakes on the GPU lane their estimated
 * memory fits (functions/core/jobs/bake-lanes.ts), as a multi-node parallel job when they need
 * more than one of its nodes. Each job is named `bakehouse-<kind>-<jobId>` and
 * tagged `bakehouse:job-id`, so that a state-change event names our job without a lookup
 * (`computeEventFromBatch`, used by the job-events Lambda behind an EventBridge rule).
 *
 * AWS Batch sends no event for the initial submission, and forgets finished jobs after a while:
 * `describe` answers `gone` for a job it no longer knows.
 */
import { DescribeJobsCommand, SubmitJobCommand, TerminateJobCommand, type BatchClient, type JobDetail } from '@aws-sdk/client-batch';
import type { Compute, ComputeEvent, ComputeFailure, ComputeJob, ComputeState, ComputeStatus } from '#ports/compute.ts';
import type { JobKind } from '#schemas/job-spec.ts';
import { estimateBakeMemory } from '#core/jobs/bake-memory.ts';
import { chooseBakeLane } from '#core/jobs/bake-lanes.ts';

export const JOB_ID_TAG = 'bakehouse:job-id';
const JOB_NAME = /^bakehouse-(stim|rollout|bake|sampler)-(\d+)$/;
/** TerminateJob's reason shows up in the console and in the job's statusReason. */
const MAX_REASON_LENGTH = 1024;

export interface BatchComputeOptions {
  /** Belongs to the caller, who destroys it. */
  client: BatchClient;
  queues: { gpu: string; cpu: string };
  definitions: { gpu: string; cpu: string };
  /**
   * The GPU lanes bakes may run on, the default GPU queue first (its single-GPU environment).
   * Omitted: every bake goes to the GPU queue.
   */
  gpuLanes?: BatchGpuLane[];
}

/** A GPU lane as the dispatcher submits to it (lib/constructs/gpu-lane.ts). */
export interface BatchGpuLane {
  name: string;
  queue: string;
  definition: string;
  /** For lanes whose bakes may span nodes (maxNodes > 1). */
  multiNodeDefinition?: string;
  gpusPerNode: number;
  gpuMemoryGiB: number;
  maxNodes: number;
}

const HARDWARE: Record<JobKind, 'gpu' | 'cpu'> = { stim: 'cpu', rollout: 'gpu', bake: 'gpu', sampler: 'gpu', trainer: 'gpu' };

export class BatchCompute implements Compute {
  private readonly client: BatchClient;
  private readonly queues: BatchComputeOptions['queues'];
  private readonly definitions: BatchComputeOptions['definitions'];
  private readonly gpuLanes: BatchGpuLane[];

  constructor({ client, queues, definitions, gpuLanes }: BatchComputeOptions) {
    this.client = client;
    this.queues = queues;
    this.definitions = definitions;
    this.gpuLanes = gpuLanes ?? [];
  }

  async submit(job: ComputeJob): Promise<string> {
    const hardware = HARDWARE[job.kind];
    if (!hardware) throw new TypeError(`Unknown job kind: ${String(job.kind)}`);
    const command = ['run', job.specUri];
    const common = { jobName: batchJobName(job.kind, job.jobId), tags: { [JOB_ID_TAG]: String(job.jobId) }, propagateTags: true };
    const placement = this.bakePlacement(job);
    const { jobId } = await this.client.send(
      new SubmitJobCommand(
        !placement
          ? { ...common, jobQueue: this.queues[hardware], jobDefinition: this.definitions[hardware], containerOverrides: { command } }
          : placement.nodes === 1
            ? { ...common, jobQueue: placement.lane.queue, jobDefinition: placement.lane.definition, containerOverrides: { command } }
            : {
                ...common,
                jobQueue: placement.lane.queue,
                jobDefinition: placement.lane.multiNodeDefinition,
                // Every node runs the engine on the same spec; torchrun ranks them from Batch's node variables.
                nodeOverrides: { numNodes: placement.nodes, nodePropertyOverrides: [{ targetNodes: '0:', containerOverrides: { command } }] },
              },
      ),
    );
    if (!jobId) throw new Error(`AWS Batch accepted job ${job.jobId} but returned no job id`);
    return jobId;
  }

  /** Where a bake goes when lanes are configured; undefined for other jobs and without lanes. */
  private bakePlacement(job: ComputeJob) {
    if (job.spec.kind !== 'bake' || this.gpuLanes.length === 0) return undefined;
    const { bake } = job.spec;
    return chooseBakeLane(estimateBakeMemory(bake.model.base_model, bake.config), this.gpuLanes);
  }

  async describe(externalId: string): Promise<ComputeStatus> {
    const { jobs } = await this.client.send(new DescribeJobsCommand({ jobs: [externalId] }));
    const detail = jobs?.find((job) => job.jobId === externalId) ?? jobs?.[0];
    if (!detail) {
      return { state: 'gone', reason: `AWS Batch has no record of job ${externalId}; it keeps finished jobs only for a limited time` };
    }
    const state = stateOf(detail.status);
    if (!state) return { state: 'pending', reason: `AWS Batch reports an unknown status ${String(detail.status)}` };
    return state === 'failed' ? { state, reason: failureReason(detail), failure: failureFacts(detail) } : { state };
  }

  async terminate(externalId: string, reason: string): Promise<void> {
    await this.client.send(new TerminateJobCommand({ jobId: externalId, reason: reason.slice(0, MAX_REASON_LENGTH) }));
  }
}

export function batchJobName(kind: JobKind, jobId: number): string {
  return `bakehouse-${kind}-${jobId}`;
}

function stateOf(status: string | undefined): Exclude<ComputeState, 'gone'> | undefined {
  switch (status) {
    case 'SUBMITTED':
    case 'PENDING':
    case 'RUNNABLE':
    case 'STARTING':
      return 'pending';
    case 'RUNNING':
      return 'running';
    case 'SUCCEEDED':
      return 'succeeded';
    case 'FAILED':
      return 'failed';
    default:
      return undefined;
  }
}

/** The parts of a JobDetail that explain a failure; every field optional, as events may omit them. */
interface FailureDetail {
  statusReason?: unknown;
  container?: { reason?: unknown; exitCode?: unknown } | null;
  attempts?: unknown;
}

/**
 * `Essential container in task exited: OutOfMemoryError: Container killed due to memory usage
 * (exit code 137)`: the job's reason, then the container's, then its exit code.
 */
function failureReason(detail: FailureDetail | JobDetail): string {
  const { statusReason, containerReason, exitCode } = failureParts(detail);
  const reasons = [statusReason, containerReason].filter((part, i, all): part is string => !!part && all.indexOf(part) === i);
  const reason = reasons.join(': ') || 'AWS Batch reported the job as failed without a reason';
  return exitCode === undefined ? reason : `${reason} (exit code ${exitCode})`;
}

/** Batch's words for a container the kernel or ECS killed for its memory use. */
const OUT_OF_MEMORY = /OutOfMemoryError|killed due to memory usage/i;
/** Batch's words for an instance taken away: a Spot reclaim, a failed or terminated host. */
const HOST_LOST = /Host EC2 .*terminated|Spot|instance.*(?:terminated|reclaimed|interrupted)/i;
/** Batch's words for a container that ended by itself: its exit code says how. */
const CONTAINER_EXITED = /^Essential container in task exited$/i;

/**
 * What Batch's status texts mean, as facts (failure-reasons.ts words them): memory, a lost
 * host, a container that exited by itself (its exit code, a signal when above 128), or else a
 * stop whose reason Batch recorded (TerminateJob's reason, or Batch's own).
 */
function failureFacts(detail: FailureDetail | JobDetail): ComputeFailure {
  const { statusReason, containerReason, exitCode } = failureParts(detail);
  const said = [statusReason, containerReason].filter((part): part is string => !!part).join(': ');
  const code = exitCode === undefined ? {} : { exitCode };
  if (OUT_OF_MEMORY.test(said)) return { cause: 'out_of_memory', ...code };
  if (HOST_LOST.test(said)) return { cause: 'host_lost', ...code };
  if (!statusReason || CONTAINER_EXITED.test(statusReason)) return code;
  return { cause: 'stopped', stoppedBecause: statusReason, ...code };
}

function failureParts(detail: FailureDetail | JobDetail): { statusReason?: string; containerReason?: string; exitCode?: number } {
  const { statusReason, container, attempts } = detail as FailureDetail;
  // The job-level container block holds the last attempt; fall back to the attempts list.
  const lastAttempt = Array.isArray(attempts) ? (attempts.at(-1) as { container?: FailureDetail['container'] } | undefined) : undefined;
  const parts: { statusReason?: string; containerReason?: string; exitCode?: number } = {};
  const status = text(statusReason);
  const containerReason = text(container?.reason) ?? text(lastAttempt?.container?.reason);
  const exitCode = integer(container?.exitCode) ?? integer(lastAttempt?.container?.exitCode);
  if (status) parts.statusReason = status;
  if (containerReason) parts.containerReason = containerReason;
  if (exitCode !== undefined) parts.exitCode = exitCode;
  return parts;
}

/**
 * Turns an EventBridge "Batch Job State Change" event into a ComputeEvent, or undefined when it
 * is not one of ours (another source, a job without our tag or name) or has no usable status.
 * Tolerant of missing and unknown fields: AWS adds fields without notice.
 */
export function computeEventFromBatch(event: unknown): ComputeEvent | undefined {
  if (!isObject(event)) return undefined;
  if (event.source !== undefined && event.source !== 'aws.batch') return undefined;
  if (event['detail-type'] !== undefined && event['detail-type'] !== 'Batch Job State Change') return undefined;
  const detail = event.detail;
  if (!isObject(detail)) return undefined;

  const externalId = text(detail.jobId);
  const jobId = jobIdOf(detail);
  const state = stateOf(text(detail.status));
  if (!externalId || jobId === undefined || !state) return undefined;
  if (state !== 'failed') return { externalId, jobId, state };
  return { externalId, jobId, state, reason: failureReason(detail as FailureDetail), failure: failureFacts(detail as FailureDetail) };
}

function jobIdOf(detail: Record<string, unknown>): number | undefined {
  const tags = isObject(detail.tags) ? detail.tags : {};
  const tagged = text(tags[JOB_ID_TAG]);
  if (tagged && /^\d+$/.test(tagged) && Number(tagged) > 0) return Number(tagged);
  const match = JOB_NAME.exec(text(detail.jobName) ?? '');
  return match && Number(match[2]) > 0 ? Number(match[2]) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}
