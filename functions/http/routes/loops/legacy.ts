/**
 * The trainer-session routes Baseten still serves for older clients (loops-api.md §1.8), over the
 * same training service: a legacy trainer is a run with its paired sampler.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { TrainingSampler } from '#core/training/model.ts';
import {
  CheckpointFilesQuery,
  CheckpointFilesResponse,
  CheckpointSearchRequest,
  CreateLoopsSessionRequest,
  LegacyCheckpointList,
  LegacySamplerRequest,
  LegacySamplerResponse,
  LegacyTrainerRequest,
  LegacyTrainerResponse,
  LoopsCheckpointList,
  LoopsSessionResponse,
  TrainerSearchRequest,
  TrainerSearchResponse,
} from '#schemas/loops.ts';
import type { AppEnv } from '../../env.ts';
import { bearer, body, json, type App } from '../../openapi.ts';
import { dataPlaneOrigin, relayUrlOf, loopsErrors, type LoopsRouteOptions } from './options.ts';
import { checkpointView, filesView, runsWithSamplers, runView, samplerBaseUrl, sessionView, trainerBaseUrl } from './views.ts';

const tags = ['Loops (legacy)'];
const SessionPath = z.object({ session_id: z.string().min(1) });
const TrainerPath = SessionPath.extend({ trainer_id: z.string().min(1) });

export function legacyRoutes(app: App, services: Services, options: LoopsRouteOptions): void {
  const training = services.training;
  const origin = (c: Context<AppEnv>) => dataPlaneOrigin(c, options);
  const samplingServer = (c: Context<AppEnv>, sampler: TrainingSampler) => ({
    id: sampler.id,
    base_url: samplerBaseUrl(origin(c), sampler.id),
    model_id: null,
    deployment_id: null,
  });
  /** The trainer, if it is the caller's and belongs to the session the path names. */
  const trainerIn = async (c: Context<AppEnv>, sessionId: string, trainerId: string) => {
    const run = await training.runs.get(c.get('actor'), trainerId);
    if (run.sessionId !== sessionId) throw new NotFoundError(`Trainer '${trainerId}' not found in session '${sessionId}'.`);
    return run;
  };

  for (const path of ['/v1/trainer_sessions', '/v1/trainers/sessions']) {
    app.openapi(
      createRoute({
        method: 'post',
        path,
        tags,
        security: bearer,
        deprecated: true,
        summary: 'Create a session (legacy)',
        request: { body: { required: false, content: { 'application/json': { schema: CreateLoopsSessionRequest } } } },
        responses: { 200: json(LoopsSessionResponse, 'The session'), ...loopsErrors(400, 413, 415) },
      }),
      async (c) => {
        const { training_project_id } = (c.req.valid('json') ?? {}) as z.infer<typeof CreateLoopsSessionRequest>;
        const session = await training.sessions.create(c.get('actor'), { trainingProjectId: training_project_id ?? null });
        return c.json({ session: sessionView(session) }, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/trainer_sessions/{session_id}/trainers',
      tags,
      security: bearer,
      deprecated: true,
      summary: 'Create a trainer with its sampler (legacy)',
      request: { params: SessionPath, body: body(LegacyTrainerRequest) },
      responses: { 200: json(LegacyTrainerResponse, 'The trainer and its sampling server'), ...loopsErrors(400, 404, 413, 415) },
    }),
    async (c) => {
      const { session_id } = c.req.valid('param');
      const request = c.req.valid('json');
      const run = await training.runs.create(c.get('actor'), {
        sessionId: session_id,
        protocol: 'loops',
        baseModel: request.model,
        loraRank: request.lora_rank,
        seed: request.seed ?? null,
        maxSeqLen: request.max_seq_len ?? null,
        name: null,
        availabilityModel: 'dedicated',
        scaleDownDelaySeconds: request.scale_down_delay_seconds,
        fromPath: request.checkpoint_path ?? null,
        relayUrl: relayUrlOf(c, options),
      });
      const sampler = await training.samplers.createPaired(c.get('actor'), { sessionId: session_id, runId: run.id });
      return c.json({ trainer_server: { id: run.id, base_url: trainerBaseUrl(origin(c), run.id), sampling_server: samplingServer(c, sampler) } }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/trainer_sessions/{session_id}/samplers',
      tags,
      security: bearer,
      deprecated: true,
      summary: 'Create a standalone sampler (legacy)',
      request: { params: SessionPath, body: body(LegacySamplerRequest) },
      responses: { 200: json(LegacySamplerResponse, 'The sampling server'), ...loopsErrors(400, 404, 413, 415) },
    }),
    async (c) => {
      const { session_id } = c.req.valid('param');
      const { model, checkpoint_path } = c.req.valid('json');
      const sampler = checkpoint_path
        ? await training.samplers.createStandalone(c.get('actor'), { sessionId: session_id, modelPath: checkpoint_path })
        : await training.samplers.createStandalone(c.get('actor'), { sessionId: session_id, baseModel: model });
      return c.json({ sampling_server: samplingServer(c, sampler) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/trainer_sessions/{session_id}/trainers/{trainer_id}/checkpoints',
      tags,
      security: bearer,
      deprecated: true,
      summary: "A trainer's checkpoints (legacy)",
      request: { params: TrainerPath },
      responses: { 200: json(LegacyCheckpointList, 'Checkpoints'), ...loopsErrors(404) },
    }),
    async (c) => {
      const { session_id, trainer_id } = c.req.valid('param');
      await trainerIn(c, session_id, trainer_id);
      const checkpoints = await training.checkpoints.list(c.get('actor'), { runId: trainer_id });
      return c.json({ trainer_id, checkpoints: checkpoints.map(checkpointView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/trainer_sessions/{session_id}/trainers/{trainer_id}/checkpoints/{checkpoint_id}/files',
      tags,
      security: bearer,
      deprecated: true,
      summary: "A checkpoint's files (legacy)",
      request: { params: TrainerPath.extend({ checkpoint_id: z.string().min(1) }), query: CheckpointFilesQuery },
      responses: { 200: json(CheckpointFilesResponse, 'One page of files'), ...loopsErrors(400, 404) },
    }),
    async (c) => {
      const { session_id, trainer_id, checkpoint_id } = c.req.valid('param');
      await trainerIn(c, session_id, trainer_id);
      const checkpoint = await training.checkpoints.get(c.get('actor'), checkpoint_id);
      if (checkpoint.runId !== trainer_id) throw new NotFoundError(`Checkpoint '${checkpoint_id}' not found for trainer '${trainer_id}'.`);
      const { page_size, page_token } = c.req.valid('query');
      return c.json(filesView(await training.checkpoints.files(c.get('actor'), checkpoint_id, { pageSize: page_size, pageToken: page_token })), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/trainers/search',
      tags,
      security: bearer,
      deprecated: true,
      summary: "Find the caller's trainers (legacy)",
      request: { body: body(TrainerSearchRequest) },
      responses: { 200: json(TrainerSearchResponse, 'Matching trainers'), ...loopsErrors(400, 413, 415) },
    }),
    async (c) => {
      const { trainer_id } = c.req.valid('json');
      const runs = await runsWithSamplers(training, c.get('actor'), { runId: trainer_id ?? undefined });
      return c.json({ trainers: runs.map(({ run, sampler }) => runView(run, origin(c), sampler)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/trainers/checkpoints/search',
      tags,
      security: bearer,
      deprecated: true,
      summary: 'Find a checkpoint by path (legacy)',
      request: { body: body(CheckpointSearchRequest) },
      responses: { 200: json(LoopsCheckpointList, 'Matching checkpoints'), ...loopsErrors(400, 413, 415) },
    }),
    async (c) => {
      const checkpoints = await training.checkpoints.list(c.get('actor'), { path: c.req.valid('json').checkpoint_path });
      return c.json({ checkpoints: checkpoints.map(checkpointView) }, 200);
    },
  );
}
