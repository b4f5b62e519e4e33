import { UnavailableError } from '../errors.ts';
import type { JobRecords } from '../jobs/job-records.ts';
import { userFacing } from '../jobs/failure-reasons.ts';
import { isTerminal } from '../jobs/state-machine.ts';
import type { ChatRelay, ChatRequestStatus } from './chat-relay.ts';
import type { SamplerPool } from './sampler-pool.ts';

/** A relayed request someone waits on: what the watch needs to find a sampler for it. */
export interface WatchedRequest {
  id: string;
  baseModel: string;
  /** Where a replacement sampler reaches this API. */
  relayUrl: string;
  /** The sampler job expected to answer; replaced when that one stops idle before taking it. */
  samplerJobId: number;
}

/**
 * Checks that a waiting request (a chat reply, a sample operation) still has a sampler to answer
 * it. One that stopped idle before taking it is replaced; one that failed fails the request with
 * its reason (a sampler that cannot start would fail again), and so does one that took the
 * request and ended without its last chunk. A failed sampler's `error` is already the sentence
 * for users (failure-reasons.ts), never its log.
 */
export class SamplerWatch {
  constructor(
    private readonly relay: ChatRelay,
    private readonly records: JobRecords,
    private readonly pool: SamplerPool,
    /**
     * A request taken by a sampler that has since asked for more work this much later, without
     * posting a chunk for it, never reached the sampler (the hand-out was lost): it is handed out again.
     */
    private readonly leaseMs: number,
  ) {}

  /**
   * Throws UnavailableError when no sampler will answer; may replace `request.samplerJobId`.
   * `seq` is the next chunk the waiter expects.
   */
  async check(request: WatchedRequest, seq: number): Promise<void> {
    const status = await this.relay.status(request.id);
    if (!status || status.state === 'cancelled') throw new UnavailableError(status?.cancelReason ?? 'The request was cancelled before it was answered.');
    if (status.state === 'pending') {
      const expected = await this.records.get(request.samplerJobId);
      if (expected?.state === 'failed') {
        throw new UnavailableError(userFacing(expected.error ?? `The model server for ${request.baseModel} could not start; try again.`));
      }
      if (!expected || isTerminal(expected.state)) request.samplerJobId = (await this.pool.ensure(request.baseModel, request.relayUrl)).job_id;
      return;
    }
    const sampler = status.samplerJobId === undefined ? undefined : await this.records.get(status.samplerJobId);
    if (sampler && !isTerminal(sampler.state)) {
      if (seq === 0 && (await this.handOutLost(request.baseModel, status))) await this.relay.requeue(request.id, request.baseModel, status.attempt);
      return;
    }
    // The last chunk may have landed just before the sampler ended.
    if (await this.relay.chunk(request.id, seq)) return;
    throw new UnavailableError(userFacing(sampler?.error ?? 'The model server stopped before finishing this reply; try again.'));
  }

  /** A sampler asks for more work only between batches: asking well after taking a request it never answered means it never got it. */
  private async handOutLost(baseModel: string, status: ChatRequestStatus): Promise<boolean> {
    const poll = await this.relay.lastPoll(baseModel);
    if (!poll || poll.samplerJobId !== status.samplerJobId || status.takenAt === undefined) return false;
    return poll.at - status.takenAt >= this.leaseMs;
  }
}
