import { OpenAPIHono, type z as zo } from '@hono/zod-openapi';
import { z } from 'zod';
import { ErrorResponse, nameSchema } from '#schemas/bread.ts';
import type { AppEnv } from './env.ts';
import { validationErrorResponse } from './errors.ts';

/** Route-building helpers shared by every resource module. */

export type App = OpenAPIHono<AppEnv>;

export function createRouter(): App {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return validationErrorResponse(c, result.target, result.error as unknown as z.ZodError);
    },
  });
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'A prerequisite or reference is invalid',
  401: 'Missing or invalid API key',
  403: 'User override without a master key',
  404: 'Not found',
  409: 'Conflicts with an existing resource',
  413: 'Body too large',
  422: 'Validation error',
};

export function errors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]) {
  return Object.fromEntries(
    [401, ...statuses].map((status) => [
      status,
      { description: ERROR_DESCRIPTIONS[status]!, content: { 'application/json': { schema: ErrorResponse } } },
    ]),
  );
}

export function json<T extends zo.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function body<T extends zo.ZodType>(schema: T) {
  return { required: true, content: { 'application/json': { schema } } };
}

export const bearer = [{ bearerAuth: [] }];

/** Path parameters, validated with the name rules so a bad name is a 422 in the spec's words. */
export const RepoPath = z.object({ repo_name: nameSchema('repo') });
export const PromptPath = RepoPath.extend({ prompt_name: nameSchema('prompt') });
export const TargetPath = RepoPath.extend({ target_name: nameSchema('target') });
export const BakePath = RepoPath.extend({ bake_name: nameSchema('bake') });
