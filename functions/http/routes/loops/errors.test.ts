import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { describe, expect, it } from 'vitest';
import { isLoopsPath, loopsErrorResponse } from './errors.ts';

/** Answers every path with the given error through the Loops funnel. */
async function answer(path: string, status: ContentfulStatusCode, code: string | null) {
  const app = new Hono();
  app.all('*', (c) => loopsErrorResponse(c, status, 'A sentence.', code));
  const response = await app.request(path);
  return { status: response.status, source: response.headers.get('x-baseten-error-source'), code: response.headers.get('x-baseten-error-code'), body: await response.json() };
}

describe('Loops errors (loops-data-plane.md §3.3, §6.4)', () => {
  it('covers the control plane, its aliases and the data plane, and nothing else', () => {
    for (const path of ['/v1/loops/runs', '/v1/teams', '/v1/teams/default/loops/trainers', '/v1/trainer_sessions', '/v1/trainers/search', '/loops/trainers/r1/health']) {
      expect(isLoopsPath(path), path).toBe(true);
    }
    for (const path of ['/v1/repo', '/v1/relay/trainers/1/next', '/v1/models', '/v1/loopsy', '/loopsy']) expect(isLoopsPath(path), path).toBe(false);
  });

  it('answers bad input on the data plane with 422, never a 400 the SDK would retry for an hour', async () => {
    expect(await answer('/loops/trainers/r1/forward', 400, 'INVALID_INPUT')).toEqual({
      status: 422,
      source: '06',
      code: 'invalid_request',
      body: { error: 'A sentence.', details: { reason: 'invalid_request' } },
    });
  });

  it('answers bad input on the control plane with 400, Part 1’s convention', async () => {
    expect(await answer('/v1/loops/trainers', 422, 'VALIDATION_ERROR')).toMatchObject({ status: 400, source: '06', code: 'invalid_request' });
  });

  it('turns a transient 503 on the data plane into the 502 the SDK retries with the same key', async () => {
    expect(await answer('/loops/trainers/r1/optim_step', 503, 'UNAVAILABLE')).toMatchObject({ status: 502, source: null, code: null });
    expect(await answer('/v1/loops/runs', 503, 'UNAVAILABLE')).toMatchObject({ status: 503, source: null });
  });

  it('marks every 4xx with 06 and its code except 408, which the SDK polls again', async () => {
    expect(await answer('/loops/trainers/r1/operations/x', 408, 'PENDING')).toMatchObject({ status: 408, source: null, code: null, body: { details: { reason: 'pending' } } });
    expect(await answer('/loops/samplers/s1/sample', 409, 'IDEMPOTENCY_CONFLICT')).toMatchObject({ status: 409, source: '06', code: 'idempotency_conflict' });
    expect(await answer('/loops/trainers/r1/health', 410, 'RUN_INACTIVE')).toMatchObject({ status: 410, source: '06', code: 'run_inactive' });
    expect(await answer('/loops/trainers/r1/forward', 413, 'PAYLOAD_TOO_LARGE')).toMatchObject({ status: 413, source: '06', code: 'payload_too_large' });
  });
});
