/**
 * When a failed delivery is tried again: the Standard Webhooks (Svix) schedule, about 27 hours
 * from the first attempt to the last. A delivery gets one attempt plus one retry per step.
 */
export const RETRY_DELAYS_MS = [5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 10 * 3_600_000] as const;

export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

/** The wait after failed attempt number `attempt` (1-based), or undefined when it was the last. */
export function retryDelayMs(attempt: number): number | undefined {
  return RETRY_DELAYS_MS[attempt - 1];
}
