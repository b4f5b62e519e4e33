import { createRoute } from '@hono/zod-openapi';
import type { Services } from '#core/services.ts';
import type { TargetJobKind } from '#core/jobs/target-jobs.ts';
import {
  BakeDownloadQuery,
  BakeResponse,
  DownloadUrlResponse,
  MetricsRows,
  ModelDownloadQuery,
  OutputQuery,
  RolloutOutputResponse,
  RolloutResponse,
  StimOutputResponse,
  StimResponse,
} from '#schemas/bread.ts';
import { z } from 'zod';
import { BakePath, bearer, errors, json, TargetPath, type App } from '../openapi.ts';

/** A log is served whole up to this size, else its end: within Lambda's 6 MB response limit. */
const MAX_LOG_BYTES = 5 * 1024 * 1024;

/** `GET …/logs`: the engine's own log of the job, for its owner (it may name files and paths). */
const logResponse = {
  description: `The engine's log as text; a log over ${MAX_LOG_BYTES / 1024 / 1024} MiB is cut to its end`,
  content: { 'text/plain': { schema: z.string() } },
};

/** Job starts, status, outputs, metrics and downloads (bread-api.md §8–§12). */
export function jobRoutes(app: App, services: Services): void {
  for (const kind of ['stim', 'rollout'] as const) targetJobRoutes(app, services, kind);
  bakeJobRoutes(app, services);
}

const TARGET_JOB_SCHEMAS = {
  stim: { status: StimResponse, output: StimOutputResponse },
  rollout: { status: RolloutResponse, output: RolloutOutputResponse },
};

function targetJobRoutes(app: App, { targetJobs }: Services, kind: TargetJobKind): void {
  const path = `/v1/repo/{repo_name}/targets/{target_name}/${kind}`;
  const tags = ['Targets'];
  const schemas = TARGET_JOB_SCHEMAS[kind];

  app.openapi(
    createRoute({
      method: 'get',
      path,
      tags,
      security: bearer,
      summary: `${kind === 'stim' ? 'Stim' : 'Rollout'} job status`,
      request: { params: TargetPath },
      responses: { 200: json(schemas.status, 'Status; `not_started` before any run'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, target_name } = c.req.valid('param');
      return c.json(await targetJobs.status(c.get('actor'), repo_name, target_name, kind), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path,
      tags,
      security: bearer,
      summary: `Start the ${kind} job (idempotent)`,
      description:
        'Returns at once. A running or complete job is returned as it is; a failed one is replaced by a fresh attempt.',
      request: { params: TargetPath },
      responses: { 200: json(schemas.status, 'The job'), ...errors(400, 404, 422) },
    }),
    async (c) => {
      const { repo_name, target_name } = c.req.valid('param');
      return c.json(await targetJobs.start(c.get('actor'), repo_name, target_name, kind), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${path}/output`,
      tags,
      security: bearer,
      summary: `Page through the ${kind} output`,
      request: { params: TargetPath, query: OutputQuery },
      responses: { 200: json(schemas.output, 'Lines offset … offset + limit − 1'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, target_name } = c.req.valid('param');
      const { offset, limit } = c.req.valid('query');
      return c.json(await targetJobs.output(c.get('actor'), repo_name, target_name, kind, offset, limit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${path}/logs`,
      tags,
      security: bearer,
      summary: `The ${kind} job's engine log`,
      description: 'The detail behind a failed job\'s `error`. 404 until the job has started and written its log.',
      request: { params: TargetPath },
      responses: { 200: logResponse, ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, target_name } = c.req.valid('param');
      return c.text(await targetJobs.log(c.get('actor'), repo_name, target_name, kind, MAX_LOG_BYTES), 200);
    },
  );
}

function bakeJobRoutes(app: App, { bakeJobs }: Services): void {
  const path = '/v1/repo/{repo_name}/bakes/{bake_name}';
  const tags = ['Bakes'];

  // Registered after `POST …/bakes/batch` (routes/definitions.ts), which must win over this.
  app.openapi(
    createRoute({
      method: 'post',
      path,
      tags,
      security: bearer,
      summary: 'Start the bake (idempotent)',
      request: { params: BakePath },
      responses: { 200: json(BakeResponse, 'The bake with its job'), ...errors(400, 404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json(await bakeJobs.start(c.get('actor'), repo_name, bake_name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${path}/metrics`,
      tags,
      security: bearer,
      summary: 'Training log rows',
      request: { params: BakePath },
      responses: { 200: json(MetricsRows, 'One row per logged iteration; [] before any'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.json((await bakeJobs.metrics(c.get('actor'), repo_name, bake_name)) as { iter: number; loss: number }[], 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${path}/logs`,
      tags,
      security: bearer,
      summary: "The bake job's engine log",
      description: 'The detail behind a failed bake\'s `error`. 404 until the job has started and written its log.',
      request: { params: BakePath },
      responses: { 200: logResponse, ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      return c.text(await bakeJobs.log(c.get('actor'), repo_name, bake_name, MAX_LOG_BYTES), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: `${path}/download`,
      tags,
      security: bearer,
      summary: 'Presigned URL for a checkpoint archive',
      request: { params: BakePath, query: BakeDownloadQuery },
      responses: { 200: json(DownloadUrlResponse, 'A time-limited URL'), ...errors(404, 422) },
    }),
    async (c) => {
      const { repo_name, bake_name } = c.req.valid('param');
      const { checkpoint, expires_in } = c.req.valid('query');
      return c.json(await bakeJobs.download(c.get('actor'), repo_name, bake_name, checkpoint, expires_in), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/models/download',
      tags: ['Models'],
      security: bearer,
      summary: 'Presigned URL for a checkpoint by model name',
      request: { query: ModelDownloadQuery },
      responses: { 200: json(DownloadUrlResponse, 'A time-limited URL for the weights archive'), ...errors(404, 422) },
    }),
    async (c) => {
      const { name, expires_in } = c.req.valid('query');
      return c.json(await bakeJobs.downloadByName(c.get('actor'), name, expires_in), 200);
    },
  );
}
