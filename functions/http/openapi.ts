import { OpenAPIHono, type z as zo } from '@hono/zod-openapi';
import { z } from 'zod';
import { ErrorResponse } from '#schemas/bread.ts';
import { nameSchema } from '#schemas/names.ts';
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
  415: 'Body is not JSON: send Content-Type: application/json',
  422: 'Validation error',
};

const errorJson = (status: keyof typeof ERROR_DESCRIPTIONS) => ({
  description: ERROR_DESCRIPTIONS[status]!,
  content: { 'application/json': { schema: ErrorResponse } },
});

export function errors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]) {
  return Object.fromEntries([401, ...statuses].map((status) => [status, errorJson(status)]));
}

/**
 * Documents the answers the shared middleware gives rather than the route itself: 401 on every
 * route that needs an API key (middleware/auth.ts), and on a route that takes a JSON body, 413 past
 * the body size limit (middleware/body.ts) and 415 when the body is not JSON (the router's
 * validator). Run once every route is registered, so no route can be left out. A route that reads
 * its body itself (chat, dataset uploads) documents its own 413 and is left as it is there.
 */
export function documentSharedErrors(app: App): void {
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== 'route') continue;
    const { route } = definition;
    const shared: Record<number, ReturnType<typeof errorJson>> = {};
    if (route.security?.length && !route.responses[401]) shared[401] = errorJson(401);
    if (route.request?.body?.content['application/json'] && !route.responses[413]) Object.assign(shared, { 413: errorJson(413), 415: errorJson(415) });
    route.responses = { ...route.responses, ...shared };
  }
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
