/**
 * The async-operation protocol both data-plane URLs speak (loops-data-plane.md §6): a submit is
 * answered 202 with the operation's id at once; a poll is held until the result or the hold's end
 * (408, which the SDK polls again straight away); 404 only for an id unknown or past retention.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { NotFoundError, ValidationError } from '#core/errors.ts';
import type { OperationView } from '#core/training/model.ts';
import { loopsErrorResponse } from './errors.ts';

/** The key the SDK sends with every submit and keeps across its retries; a caller without one gets a fresh key. */
export const idempotencyKey = (c: Context) => c.req.header('idempotency-key') || randomUUID().replace(/-/g, '');

/** `202 {operation_id, schema_version: 1}` with `Location` naming where to poll. */
export function accepted(c: Context, baseUrlPath: string, operationId: string) {
  c.header('location', `${baseUrlPath}/operations/${encodeURIComponent(operationId)}`);
  return c.json({ operation_id: operationId, schema_version: 1 as const }, 202);
}

/** Reads a data-plane body: not JSON is bad input (422), never a plain 400 the SDK would retry. */
export async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text || '{}');
  } catch {
    throw new ValidationError('The request body is not valid JSON.');
  }
}

/** Answers a poll from what the service saw within the hold; `answerDone` answers a finished one. */
export function pollAnswer(c: Context, operationId: string, view: OperationView | undefined, answerDone: (done: Extract<OperationView, { status: 'done' }>) => Response) {
  if (!view) throw new NotFoundError(`Operation '${operationId}' is unknown or its result has expired (results are kept for at least an hour).`);
  switch (view.status) {
    case 'pending':
      return loopsErrorResponse(c, 408, 'The operation is still running; poll again.', 'PENDING');
    case 'error':
      return c.json({ status: 'error', error: view.error, error_class: view.errorClass }, 200);
    case 'done':
      return answerDone(view);
  }
}
