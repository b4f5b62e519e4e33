/**
 * The trainer at `run.base_url` = `{origin}/loops/trainers/{run_id}` (loops-data-plane.md §5–§7):
 * readiness, op submits and polls, each op translated to the training service's neutral operation.
 */
import type { Context } from 'hono';
import { ValidationError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { AppEnv } from '../../env.ts';
import { validationErrorResponse } from '../../errors.ts';
import type { App } from '../../openapi.ts';
import { accepted, idempotencyKey, jsonBody, pollAnswer } from './operations.ts';
import { DEFAULT_POLL_HOLD_MS, type LoopsRouteOptions } from './options.ts';
import { toLoopsResult, toSubmittedOperation, TRAINER_OPS, type TrainerOpName } from './trainer-wire.ts';

const TRAINER = '/loops/trainers/:runId';

/** `X-Run-Id` and a body's `run_id`, when sent, must name the run the path names (§2.3). */
function assertSameRun(pathRunId: string, named: string | null | undefined, where: string): void {
  if (named != null && named !== pathRunId) {
    throw new ValidationError(`${where} names run '${named}', but this trainer serves run '${pathRunId}'; use that run's base_url.`);
  }
}

export function trainerPlaneRoutes(app: App, services: Services, options: LoopsRouteOptions): void {
  const { runs, operations } = services.training;
  const runIdOf = (c: Context<AppEnv>) => {
    const runId = c.req.param('runId')!;
    assertSameRun(runId, c.req.header('x-run-id'), 'X-Run-Id');
    return runId;
  };

  /** 503 while the trainer starts (the SDK keeps waiting), 200 once it serves; an inactive run is 410 + `06`. Every call counts as activity. */
  app.get(`${TRAINER}/health`, async (c) => {
    const phase = await runs.health(c.get('actor'), runIdOf(c));
    if (phase === 'starting') return c.json({ status: 'starting' }, 503);
    return c.json({ status: phase === 'ready' ? 'ok' : phase }, 200);
  });

  for (const op of Object.keys(TRAINER_OPS) as TrainerOpName[]) {
    app.post(`${TRAINER}/${op}`, async (c) => {
      const runId = runIdOf(c);
      const parsed = TRAINER_OPS[op].safeParse(await jsonBody(c));
      if (!parsed.success) return validationErrorResponse(c, 'json', parsed.error);
      assertSameRun(runId, parsed.data.run_id, 'run_id');
      const operation = toSubmittedOperation(op, parsed.data);
      const { operationId } = await operations.submit(c.get('actor'), runId, { idempotencyKey: idempotencyKey(c), operation });
      return accepted(c, `/loops/trainers/${runId}`, operationId);
    });
  }

  app.get(`${TRAINER}/operations/:operationId`, async (c) => {
    const operationId = c.req.param('operationId');
    const view = await operations.poll(c.get('actor'), runIdOf(c), operationId, {
      holdMs: options.pollHoldMs ?? DEFAULT_POLL_HOLD_MS,
      signal: c.req.raw.signal,
    });
    return pollAnswer(c, operationId, view, (done) => {
      if (!done.operation) throw new Error(`operation ${operationId} is done without naming its operation`);
      return c.json({ status: 'done', result: toLoopsResult(done.operation, done.result) }, 200);
    });
  });
}
