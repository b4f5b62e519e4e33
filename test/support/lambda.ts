/**
 * For handler tests: the Lambda handlers compose their runtime from the environment at import
 * (functions/handlers/runtime.ts). Tests mock that module with a `Runtime` object made here and
 * point it at a test app's services before each test:
 *
 *   const runtime = vi.hoisted(() => ({}) as Runtime);
 *   vi.mock('#functions/handlers/runtime.ts', () => ({ runtime }));
 *   beforeEach(async () => { api = await createTestApp(); useTestApp(runtime, api); });
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import type { Runtime } from '#functions/composition.ts';
import type { TestApp } from './app.ts';

export function useTestApp(runtime: Runtime, api: TestApp): void {
  Object.assign(runtime, { services: api.services, store: api.store });
}

/** A recorded event under test/fixtures. */
export function readFixture<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url)), 'utf8')) as T;
}

/** The parts of a Lambda context the handlers and Powertools read. */
export function lambdaContext(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/01/01/[$LATEST]2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f',
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
