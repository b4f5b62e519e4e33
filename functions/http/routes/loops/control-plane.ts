/**
 * The Loops control plane (loops-api.md Part 1, loops-data-plane.md §4): sessions, runs and
 * trainers, samplers, checkpoints, deployments, capabilities and teams, over the training service.
 * Creation is also served under the team root and the internal `debug` paths, which the SDK uses
 * when a team or its internal settings are set; they behave exactly like the plain routes.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Actor } from '#core/actor.ts';
import { InvalidInputError, NotFoundError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { TrainingRun, TrainingSampler } from '#core/training/model.ts';
import {
  CheckpointFilesQuery,
  CheckpointFilesResponse,
  CheckpointSource,
  CreateLoopsRunRequest,
  CreateLoopsSamplerRequest,
  CreateLoopsSessionRequest,
  DeactivatedRun,
  EmptyObject,
  LoopsCapabilities,
  LoopsCheckpointList,
  LoopsCheckpointListQuery,
  LoopsDeploymentList,
  LoopsDeploymentResponse,
  LoopsRunList,
  LoopsRunListQuery,
  LoopsRunResponse,
  LoopsSamplerList,
  LoopsSamplerResponse,
  LoopsSessionResponse,
  TeamList,
  ValidateCheckpointRequest,
} from '#schemas/loops.ts';
import type { AppEnv } from '../../env.ts';
import { bearer, body, json, type App } from '../../openapi.ts';
import { dataPlaneOrigin, relayUrlOf, TEAM, loopsErrors, type LoopsRouteOptions } from './options.ts';
import { checkpointView, deploymentView, filesView, runsWithSamplers, runView, samplerView, sessionView } from './views.ts';

const tags = ['Loops'];
type LoopsContext = Context<AppEnv>;

/** Where session, trainer and sampler creation are served: the plain root and the team root. */
const ROOTS = ['/v1/loops', '/v1/teams/{team_id}/loops'] as const;
const TeamPath = z.object({ team_id: z.string() });
const teamParams = (root: (typeof ROOTS)[number]) => (root === ROOTS[1] ? { params: TeamPath } : {});
/** Under the team root an unknown team is 404, whatever else the route answers. */
const teamNotFound = (root: (typeof ROOTS)[number]) => (root === ROOTS[1] ? ([404] as const) : []);

const SessionPath = z.object({ session_id: z.string().min(1) });
const RunPath = z.object({ run_id: z.string().min(1) });
const SamplerPath = z.object({ sampler_id: z.string().min(1) });
const CheckpointPath = z.object({ checkpoint_id: z.string().min(1) });
const DeploymentPath = z.object({ deployment_id: z.string().min(1) });

export function controlPlaneRoutes(app: App, services: Services, options: LoopsRouteOptions): void {
  const training = services.training;
  const origin = (c: LoopsContext) => dataPlaneOrigin(c, options);
  const actor = (c: LoopsContext): Actor => c.get('actor');

  /** The run's paired sampler, if it has one yet. */
  const pairedSampler = async (who: Actor, runId: string): Promise<TrainingSampler | undefined> =>
    (await training.samplers.list(who)).find((sampler) => sampler.runId === runId);
  const showRun = async (c: LoopsContext, run: TrainingRun) => runView(run, origin(c), await pairedSampler(actor(c), run.id));

  app.use('/v1/teams/:team_id/loops/*', async (c, next) => {
    if (c.req.param('team_id') !== TEAM.id) throw new NotFoundError(`Team '${c.req.param('team_id')}' not found; GET /v1/teams lists yours.`);
    await next();
  });

  // ── Sessions ──
  for (const root of ROOTS) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `${root}/sessions`,
        tags,
        security: bearer,
        summary: 'Create a session',
        request: { ...teamParams(root), body: { required: false, content: { 'application/json': { schema: CreateLoopsSessionRequest } } } },
        responses: { 200: json(LoopsSessionResponse, 'The session'), ...loopsErrors(400, 413, 415, ...teamNotFound(root)) },
      }),
      async (c) => {
        const { training_project_id } = (c.req.valid('json') ?? {}) as z.infer<typeof CreateLoopsSessionRequest>;
        const session = await training.sessions.create(actor(c), { trainingProjectId: training_project_id ?? null });
        return c.json({ session: sessionView(session) }, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/sessions/{session_id}',
      tags,
      security: bearer,
      summary: 'Get a session',
      request: { params: SessionPath },
      responses: { 200: json(LoopsSessionResponse, 'The session'), ...loopsErrors(404) },
    }),
    async (c) => {
      const session = await training.sessions.get(actor(c), c.req.valid('param').session_id);
      return c.json({ session: sessionView(session) }, 200);
    },
  );

  // ── Runs and trainers ──
  const createRun = async (c: LoopsContext, request: z.infer<typeof CreateLoopsRunRequest>, withSampler: boolean) => {
    if (request.base_checkpoint) {
      throw new InvalidInputError('base_checkpoint is not supported: start from a base model, or from saved state with path (bt://loops:<run>/weights/<name>).');
    }
    const run = await training.runs.create(actor(c), {
      sessionId: request.session_id,
      protocol: 'loops',
      baseModel: request.base_model,
      loraRank: request.lora_rank,
      seed: request.seed ?? null,
      maxSeqLen: request.max_seq_len ?? null,
      name: request.name ?? null,
      availabilityModel: request.availability_model,
      scaleDownDelaySeconds: request.scale_down_delay_seconds,
      fromPath: request.path ?? null,
      relayUrl: relayUrlOf(c, options),
    });
    const sampler = withSampler ? await training.samplers.createPaired(actor(c), { sessionId: run.sessionId, runId: run.id }) : undefined;
    return c.json({ run: runView(run, origin(c), sampler) }, 200);
  };

  for (const root of ROOTS) {
    for (const path of [`${root}/trainers`, `${root}/debug/trainers`]) {
      app.openapi(
        createRoute({
          method: 'post',
          path,
          tags,
          security: bearer,
          summary: path.includes('/debug/') ? 'Create a trainer-only run (internal alias)' : 'Create a trainer-only run',
          description: 'What the SDK calls. The run has no sampler until `POST …/samplers {session_id, run_id}` pairs one.',
          request: { ...teamParams(root), body: body(CreateLoopsRunRequest) },
          responses: { 200: json(LoopsRunResponse, 'The run, with `sampler: null`'), ...loopsErrors(400, 404, 413, 415) },
        }),
        async (c) => createRun(c, c.req.valid('json') as z.infer<typeof CreateLoopsRunRequest>, false),
      );
    }
    app.openapi(
      createRoute({
        method: 'post',
        path: `${root}/runs`,
        tags,
        security: bearer,
        summary: 'Create a run with its paired sampler',
        request: { ...teamParams(root), body: body(CreateLoopsRunRequest) },
        responses: { 200: json(LoopsRunResponse, 'The run and its sampler'), ...loopsErrors(400, 404, 413, 415) },
      }),
      async (c) => createRun(c, c.req.valid('json') as z.infer<typeof CreateLoopsRunRequest>, true),
    );
    app.openapi(
      createRoute({
        method: 'get',
        path: `${root}/runs`,
        tags,
        security: bearer,
        summary: "List the caller's runs",
        request: { ...teamParams(root), query: LoopsRunListQuery },
        responses: { 200: json(LoopsRunList, 'Runs, newest first'), ...loopsErrors(400, ...teamNotFound(root)) },
      }),
      async (c) => {
        const { run_id, base_model } = c.req.valid('query') as z.infer<typeof LoopsRunListQuery>;
        const runs = await runsWithSamplers(training, actor(c), { runId: run_id, baseModel: base_model });
        return c.json({ runs: runs.map(({ run, sampler }) => runView(run, origin(c), sampler)) }, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/runs/{run_id}',
      tags,
      security: bearer,
      summary: 'Get a run',
      request: { params: RunPath },
      responses: { 200: json(LoopsRunResponse, 'The run, with its sampler'), ...loopsErrors(404) },
    }),
    async (c) => c.json({ run: await showRun(c, await training.runs.get(actor(c), c.req.valid('param').run_id)) }, 200),
  );

  const deactivate = async (c: LoopsContext, runId: string) => {
    const run = await training.runs.deactivate(actor(c), runId);
    return c.json({ id: run.id, base_model: run.baseModel, user: { id: run.userId, email: null } }, 200);
  };
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/loops/runs/{run_id}/deactivate',
      tags,
      security: bearer,
      summary: 'Stop a run and its sampler for good',
      description: 'Its checkpoints stay readable and downloadable.',
      request: { params: RunPath },
      responses: { 200: json(DeactivatedRun, 'The deactivated run'), ...loopsErrors(404) },
    }),
    async (c) => deactivate(c, c.req.valid('param').run_id),
  );

  // ── Samplers ──
  const createSampler = async (c: LoopsContext, request: CreateLoopsSamplerRequest) => {
    const who = actor(c);
    const sources = [request.run_id, request.base_model, request.model_path].filter((value) => value != null);
    if (sources.length !== 1) {
      throw new InvalidInputError('Give exactly one of run_id (a paired sampler), base_model or model_path (a standalone sampler).');
    }
    let sampler: TrainingSampler;
    if (request.run_id) sampler = await training.samplers.createPaired(who, { sessionId: request.session_id, runId: request.run_id });
    else if (request.base_model) sampler = await training.samplers.createStandalone(who, { sessionId: request.session_id, baseModel: request.base_model });
    else sampler = await training.samplers.createStandalone(who, { sessionId: request.session_id, modelPath: request.model_path! });
    const run = sampler.runId ? await training.runs.get(who, sampler.runId) : undefined;
    return c.json({ sampler: samplerView(sampler, origin(c), run) }, 200);
  };

  for (const root of ROOTS) {
    for (const path of [`${root}/samplers`, `${root}/debug/samplers`]) {
      app.openapi(
        createRoute({
          method: 'post',
          path,
          tags,
          security: bearer,
          summary: path.includes('/debug/') ? 'Create a sampler (internal alias)' : 'Create a sampler',
          description: 'Paired with `run_id` (idempotent per run), or standalone from `base_model` or a `sampler_weights` `model_path`.',
          request: { ...teamParams(root), body: body(CreateLoopsSamplerRequest) },
          responses: { 200: json(LoopsSamplerResponse, 'The sampler'), ...loopsErrors(400, 404, 413, 415) },
        }),
        async (c) => createSampler(c, c.req.valid('json') as CreateLoopsSamplerRequest),
      );
    }
    app.openapi(
      createRoute({
        method: 'get',
        path: `${root}/samplers`,
        tags,
        security: bearer,
        summary: "List the caller's samplers",
        request: teamParams(root),
        responses: { 200: json(LoopsSamplerList, 'Samplers, newest first'), ...loopsErrors(...teamNotFound(root)) },
      }),
      async (c) => {
        const who = actor(c);
        const [samplers, runs] = await Promise.all([training.samplers.list(who), training.runs.list(who, {})]);
        const byId = new Map(runs.map((run) => [run.id, run]));
        const views = samplers.map((sampler) => samplerView(sampler, origin(c), sampler.runId ? byId.get(sampler.runId) : undefined));
        return c.json({ samplers: views.sort((a, b) => b.created_at.localeCompare(a.created_at)) }, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/samplers/{sampler_id}',
      tags,
      security: bearer,
      summary: 'Get a sampler',
      request: { params: SamplerPath },
      responses: { 200: json(LoopsSamplerResponse, 'The sampler'), ...loopsErrors(404) },
    }),
    async (c) => {
      const sampler = await training.samplers.get(actor(c), c.req.valid('param').sampler_id);
      const run = sampler.runId ? await training.runs.get(actor(c), sampler.runId) : undefined;
      return c.json({ sampler: samplerView(sampler, origin(c), run) }, 200);
    },
  );

  // ── Checkpoints ──
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/checkpoints',
      tags,
      security: bearer,
      summary: 'List checkpoints by run, base model or path',
      description: 'Exactly one of `run_id`, `base_model` and `checkpoint_path`.',
      request: { query: LoopsCheckpointListQuery },
      responses: { 200: json(LoopsCheckpointList, 'Checkpoints'), ...loopsErrors(400, 404) },
    }),
    async (c) => {
      const { run_id, base_model, checkpoint_path } = c.req.valid('query');
      const filters = [run_id, base_model, checkpoint_path].filter((value) => value !== undefined);
      if (filters.length !== 1) throw new InvalidInputError('Give exactly one of run_id, base_model or checkpoint_path.');
      const filter = run_id ? { runId: run_id } : base_model ? { baseModel: base_model } : { path: checkpoint_path! };
      const checkpoints = await training.checkpoints.list(actor(c), filter);
      return c.json({ checkpoints: checkpoints.map(checkpointView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/loops/checkpoints/validate',
      tags,
      security: bearer,
      summary: 'Check that a sampler checkpoint is usable',
      description: "200 when the path names a `sampler_weights` checkpoint the caller can read (with the run's base model, when `run_id` is given); else 400 with the reason.",
      request: { body: body(ValidateCheckpointRequest) },
      responses: { 200: json(EmptyObject, 'Usable'), ...loopsErrors(400, 413, 415) },
    }),
    async (c) => {
      const { checkpoint_path, run_id } = c.req.valid('json');
      await training.checkpoints.validate(actor(c), checkpoint_path, run_id ?? undefined);
      return c.json({}, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/checkpoints/{checkpoint_id}/files',
      tags,
      security: bearer,
      summary: "A checkpoint's files as presigned URLs",
      description: '`page_token` is a numeric offset; follow `next_page_token` until it is null.',
      request: { params: CheckpointPath, query: CheckpointFilesQuery },
      responses: { 200: json(CheckpointFilesResponse, 'One page of files'), ...loopsErrors(400, 404) },
    }),
    async (c) => {
      const { page_size, page_token } = c.req.valid('query');
      const page = await training.checkpoints.files(actor(c), c.req.valid('param').checkpoint_id, { pageSize: page_size, pageToken: page_token });
      return c.json(filesView(page), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/checkpoints/{checkpoint_id}/source',
      tags,
      security: bearer,
      summary: "Where a checkpoint's files come from",
      description: 'Always `s3`: every file is presigned by `/files`.',
      request: { params: CheckpointPath },
      responses: { 200: json(CheckpointSource, 'The source'), ...loopsErrors(404) },
    }),
    async (c) => {
      await training.checkpoints.get(actor(c), c.req.valid('param').checkpoint_id);
      return c.json({ source: { kind: 's3' as const } }, 200);
    },
  );

  // ── Deployments: a run and its sampler ──
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/deployments',
      tags,
      security: bearer,
      summary: "List the caller's active deployments",
      responses: { 200: json(LoopsDeploymentList, 'Deployments of active runs'), ...loopsErrors() },
    }),
    async (c) => {
      const active = (await runsWithSamplers(training, actor(c), {})).filter(({ run }) => run.state === 'active');
      return c.json({ deployments: active.map(({ run, sampler }) => deploymentView(run, origin(c), sampler)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/deployments/{deployment_id}',
      tags,
      security: bearer,
      summary: 'Get a deployment with its status',
      request: { params: DeploymentPath },
      responses: { 200: json(LoopsDeploymentResponse, 'The deployment'), ...loopsErrors(404) },
    }),
    async (c) => {
      const run = await training.runs.get(actor(c), c.req.valid('param').deployment_id);
      return c.json({ deployment: deploymentView(run, origin(c), await pairedSampler(actor(c), run.id)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/loops/deployments/{deployment_id}/deactivate',
      tags,
      security: bearer,
      summary: 'Shut a deployment down',
      description: 'Deactivates its run and sampler; checkpoints survive.',
      request: { params: DeploymentPath },
      responses: { 200: json(DeactivatedRun, 'The deactivated run'), ...loopsErrors(404) },
    }),
    async (c) => deactivate(c, c.req.valid('param').deployment_id),
  );

  // ── Capabilities and teams ──
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/loops/capabilities',
      tags,
      security: bearer,
      summary: 'Models a run or sampler may use',
      responses: { 200: json(LoopsCapabilities, 'The base model catalog'), ...loopsErrors() },
    }),
    (c) => c.json({ supported_models: services.models.baseModels().map((model_name) => ({ model_name, supports_vision_language: false })) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/teams',
      tags,
      security: bearer,
      summary: 'List teams',
      description: 'One team per deployment; the SDK resolves `LOOPS_TEAM` by its name.',
      responses: { 200: json(TeamList, 'Teams'), ...loopsErrors() },
    }),
    (c) => c.json({ teams: [TEAM] }, 200),
  );
}
