import type { Item } from '../../ports/store.ts';
import type { JobKind, JobSpec } from '../../schemas/job-spec.ts';
import { UnauthorizedError } from '../errors.ts';
import type { JobPipeline } from './job-pipeline.ts';
import type { JobOwner, JobRecord, JobRecords } from './job-records.ts';
import { newRelayToken, relayTokenMatches } from './relay-tokens.ts';

/**
 * A long-running compute job reached by relay (DESIGN.md §1: a sampler per base model, a trainer
 * per run). It stops when idle, so a complete one is started afresh too. Each start gets its own
 * relay token, which only the spec carries: the job record keeps its hash.
 */
export function startRelayJob(
  pipeline: JobPipeline,
  request: {
    kind: JobKind;
    owner: JobOwner;
    /** The owner item as read just before. */
    ownerItem: Item;
    spec: (jobId: number, outputUri: string, relayToken: string) => JobSpec;
  },
): Promise<JobRecord> {
  return pipeline.start({
    kind: request.kind,
    owner: request.owner,
    ownerItem: request.ownerItem,
    restartComplete: true,
    build: async (jobId, outputUri) => {
      const { token, sha256 } = newRelayToken();
      return { spec: request.spec(jobId, outputUri, token), config: { relay_token_sha256: sha256 } };
    },
  });
}

/** The job of `kind` that this relay token was made for; UnauthorizedError for any other token. */
export async function relayJobOf(records: JobRecords, kind: JobKind, jobId: number, token: string): Promise<JobRecord> {
  const job = await records.get(jobId);
  const expected = job?.kind === kind ? job.config?.relay_token_sha256 : undefined;
  if (!job || !relayTokenMatches(expected, token)) {
    throw new UnauthorizedError('Invalid relay token');
  }
  return job;
}
