import type { Clock } from '../../ports/clock.ts';
import type { Item, Store, TransactOp } from '../../ports/store.ts';
import { TrainerResults } from '../../schemas/trainer.ts';
import { ValidationError } from '../errors.ts';
import { keys } from '../keys.ts';

/** One optimizer step of a run as recorded when its result arrived. */
export interface StepMetric {
  step: number;
  /** The token-weighted mean loss of the forward_backward calls since the previous step; null when none counted a token. */
  loss: number | null;
  learningRate: number;
  gradNorm: number;
  /** Active tokens of those forward_backward calls. */
  tokens: number;
  time: string;
}

export interface StepMetricPage {
  metrics: StepMetric[];
  /** Present when more rows may follow. */
  cursor?: string;
}

/** Rows a page holds at most: a run of 100k steps is read in pages, never as one item or one answer. */
export const MAX_METRICS_PAGE = 1000;

/**
 * A run's loss per step. Each forward_backward result adds its loss sum and active tokens to the
 * run's pending loss; each optim_step result turns that into one Store row and clears it. Both
 * writes go in the transaction that records the operation's end, so a retried result counts
 * once. The mean is loss_sum / active_tokens, right whichever normalization the calls asked for.
 * Rows are keyed by the operation's sequence number, not the step, because init and load reset
 * the step while the run's history goes on.
 */
export class RunMetrics {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** The writes that record what the operation's result adds to the run's metrics; none for most. */
  async recordWith(operation: Item, result: Record<string, unknown>): Promise<TransactOp[]> {
    const runId = operation.run_id as string;
    if (operation.kind === 'init' || operation.kind === 'load') return [{ kind: 'delete', key: keys.trainingPendingLoss(runId) }];
    if (operation.kind === 'forward' && operation.backward === true) {
      const forward = TrainerResults.forward.safeParse(result);
      if (!forward.success) return [];
      return [{ kind: 'update', key: keys.trainingPendingLoss(runId), update: { add: { loss_sum: forward.data.loss_sum, active_tokens: forward.data.active_tokens } } }];
    }
    if (operation.kind !== 'optim_step') return [];
    const step = TrainerResults.optim_step.safeParse(result);
    if (!step.success) return [];
    // The trainer runs one operation at a time, so nothing adds to the pending loss while this is read.
    const pending = await this.store.get(keys.trainingPendingLoss(runId));
    const lossSum = (pending?.loss_sum as number | undefined) ?? 0;
    const tokens = (pending?.active_tokens as number | undefined) ?? 0;
    const row = {
      ...keys.trainingStepMetric(runId, operation.seq as number),
      step: step.data.step,
      loss: tokens > 0 ? lossSum / tokens : null,
      learning_rate: step.data.learning_rate,
      grad_norm: step.data.grad_norm,
      tokens,
      time: this.clock.now().toISOString(),
    };
    return [
      { kind: 'put', item: row },
      { kind: 'delete', key: keys.trainingPendingLoss(runId) },
    ];
  }

  /** The run's rows in step order, a page at a time; the caller checks the run is the actor's. */
  async page(runId: string, page: { limit: number; cursor?: string }): Promise<StepMetricPage> {
    const after = page.cursor === undefined ? undefined : storeCursorOf(runId, page.cursor);
    const { items, cursor } = await this.store.query({ ...keys.trainingStepMetrics(runId), limit: Math.min(page.limit, MAX_METRICS_PAGE), cursor: after });
    return {
      metrics: items.map((item) => ({
        step: item.step as number,
        loss: item.loss as number | null,
        learningRate: item.learning_rate as number,
        gradNorm: item.grad_norm as number,
        tokens: item.tokens as number,
        time: item.time as string,
      })),
      ...(cursor ? { cursor: Buffer.from(JSON.stringify({ run_id: runId, after: cursor })).toString('base64url') } : {}),
    };
  }
}

/** A page cursor names its run, so one run's cursor never reads another's partition. */
function storeCursorOf(runId: string, cursor: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    // reported below
  }
  const { run_id, after } = (parsed ?? {}) as { run_id?: unknown; after?: unknown };
  if (run_id !== runId || typeof after !== 'string') {
    throw new ValidationError(`page_token is not one this run's metrics gave; pass the next_page_token of the previous page, or none for the first.`);
  }
  return after;
}
