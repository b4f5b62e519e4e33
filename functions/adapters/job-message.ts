/**
 * Checks shared by the JobQueue adapters, so that a message or delay refused by SQS is refused
 * in-process too.
 */
import type { JobMessage } from '#ports/job-queue.ts';
import { JobMessageBody } from '#schemas/queue.ts';

/** SQS's per-message delay limit (15 minutes). */
export const MAX_DELAY_SECONDS = 900;

export function assertJobMessage(message: JobMessage): void {
  if (!JobMessageBody.safeParse(message).success) {
    const jobId = (message as Partial<JobMessage> | undefined)?.jobId;
    throw new TypeError(`A job message needs a positive integer jobId (got ${JSON.stringify(jobId)})`);
  }
}

/** The delay in whole seconds, 0 when unset; throws outside 0..900. */
export function checkedDelaySeconds(delaySeconds: number | undefined): number {
  const delay = delaySeconds ?? 0;
  if (!Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_SECONDS) {
    throw new RangeError(`delaySeconds must be an integer from 0 to ${MAX_DELAY_SECONDS} (got ${delaySeconds})`);
  }
  return delay;
}

/** The queue body of a message: exactly `{"jobId":n}`. */
export function jobMessageBody(message: JobMessage): string {
  assertJobMessage(message);
  return JSON.stringify({ jobId: message.jobId });
}

/** Reads a queue body back (the dispatcher's side); throws on anything but `{"jobId":n}`. */
export function parseJobMessageBody(body: string): JobMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new TypeError(`A job message body must be JSON (got ${JSON.stringify(body.slice(0, 100))})`);
  }
  const message = { jobId: (parsed as Partial<JobMessage> | null)?.jobId } as JobMessage;
  assertJobMessage(message);
  return message;
}
