/**
 * The Tinker REST client's routes (loops-api.md §2.6, §2.14): sessions, training runs and their
 * checkpoints — the same runs and checkpoints the Loops API lists, plus the external weights only
 * Tinker makes — a checkpoint's archive (302 to a signed URL of one tarball), an external weights
 * checkpoint's signed URL per file, deletion, publishing (public / private) and its time to live.
 * A `checkpoint_id` holds a slash (`weights/<name>`), so it is routed as two segments. Only a
 * checkpoint's owner manages it; `access_scope=accessible` adds other users' runs that hold public
 * checkpoints, shown with those checkpoints alone.
 */
import type { Context } from 'hono';
import type { Actor } from '#core/actor.ts';
import { NotFoundError, ValidationError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import type { TrainingCheckpoint, TrainingRun } from '#core/training/model.ts';
import { checkpointKind, tinkerCheckpointId } from '#core/training/checkpoint-paths.ts';
import { AccessScopeQuery, SetCheckpointTtlRequest, TrainingRunsQuery, type ExternalWeightsUrls } from '#schemas/tinker.ts';
import type { AppEnv } from '../../env.ts';
import type { App } from '../../openapi.ts';
import { API, readJson } from './requests.ts';
import { checkpointView, modelIdOf, runOfModel, samplingSessionIdOf, trainingRunView } from './views.ts';

const CHECKPOINT = `${API}/training_runs/:modelId/checkpoints/:directory/:name`;

function pageOf(c: Context<AppEnv>) {
  const parsed = TrainingRunsQuery.safeParse(c.req.query());
  if (!parsed.success) throw new ValidationError('limit and offset must be whole numbers (limit 1 to 1000, offset from 0).');
  return parsed.data;
}

/** Whether other users' runs with public checkpoints are included. */
function accessibleOf(c: Context<AppEnv>): boolean {
  const parsed = AccessScopeQuery.safeParse(c.req.query());
  if (!parsed.success) throw new ValidationError(`access_scope must be 'owned' or 'accessible'.`);
  return parsed.data.access_scope === 'accessible';
}

export function restRoutes(app: App, services: Services): void {
  const training = services.training;
  const actorOf = (c: Context<AppEnv>): Actor => c.get('actor');

  /** The checkpoint a route's model id and two-segment checkpoint id name. */
  const checkpointOf = async (c: Context<AppEnv>): Promise<TrainingCheckpoint> => {
    const { modelId, directory, name } = c.req.param() as { modelId: string; directory: string; name: string };
    const path = `tinker://${modelId}/${directory}/${name}`;
    const checkpoint = ['weights', 'sampler_weights', 'external_weights'].includes(directory) ? await training.checkpoints.find(actorOf(c), path) : undefined;
    if (!checkpoint) throw new NotFoundError(`Checkpoint ${directory}/${name} of model '${modelId}' not found; list them with GET /api/v1/training_runs/${modelId}/checkpoints.`);
    return checkpoint;
  };

  app.get(`${API}/sessions`, async (c) => {
    const { limit, offset } = pageOf(c);
    const ids = await training.sessions.listIds(actorOf(c));
    return c.json({ sessions: ids.slice(offset, offset + limit) });
  });

  /** The models and sampling sessions made in the session. */
  app.get(`${API}/sessions/:sessionId`, async (c) => {
    const session = await training.sessions.get(actorOf(c), c.req.param('sessionId'));
    const runs = (await training.runs.list(actorOf(c))).filter((run) => run.sessionId === session.id);
    const samplers = (await training.samplers.list(actorOf(c))).filter((sampler) => sampler.sessionId === session.id);
    return c.json({ training_run_ids: runs.map(modelIdOf), sampler_ids: samplers.map(samplingSessionIdOf) });
  });

  /** The caller's runs, newest first; with `access_scope=accessible` then other users' runs with public checkpoints. */
  app.get(`${API}/training_runs`, async (c) => {
    const { limit, offset } = pageOf(c);
    // Own runs' checkpoints are listed for the page only; shared runs come with their public ones.
    const owned: { run: TrainingRun; checkpoints?: TrainingCheckpoint[] }[] = (await training.runs.list(actorOf(c))).map((run) => ({ run }));
    const shared = accessibleOf(c) ? (await training.checkpoints.sharedRuns(actorOf(c))).sort((a, b) => b.run.createdAt.localeCompare(a.run.createdAt)) : [];
    const runs = [...owned, ...shared];
    const page = await Promise.all(
      runs.slice(offset, offset + limit).map(async ({ run, checkpoints }) => trainingRunView(run, checkpoints ?? (await training.checkpoints.list(actorOf(c), { runId: run.id }, { external: true })))),
    );
    return c.json({ training_runs: page, cursor: { offset, limit, total_count: runs.length } });
  });

  app.get(`${API}/training_runs/:modelId`, async (c) => {
    const modelId = c.req.param('modelId');
    const accessible = accessibleOf(c);
    const own = await runOfModel(training, actorOf(c), modelId).catch((error: unknown) => {
      if (accessible && error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (own) return c.json(trainingRunView(own, await training.checkpoints.list(actorOf(c), { runId: own.id }, { external: true })));
    const shared = await training.checkpoints.sharedRun(modelId);
    if (!shared) throw new NotFoundError(`Model '${modelId}' not found among your runs or those with public checkpoints; list them with GET /api/v1/training_runs?access_scope=accessible.`);
    return c.json(trainingRunView(shared.run, shared.checkpoints));
  });

  app.get(`${API}/training_runs/:modelId/checkpoints`, async (c) => {
    const run = await runOfModel(training, actorOf(c), c.req.param('modelId'));
    const checkpoints = await training.checkpoints.list(actorOf(c), { runId: run.id }, { external: true });
    return c.json({ checkpoints: checkpoints.map((checkpoint) => checkpointView(checkpoint, modelIdOf(run))) });
  });

  /** The caller's checkpoints of every run, newest first. */
  app.get(`${API}/checkpoints`, async (c) => {
    const { limit, offset } = pageOf(c);
    const modelIds = new Map((await training.runs.list(actorOf(c))).map((run) => [run.id, modelIdOf(run)]));
    const all = (await training.checkpoints.listMine(actorOf(c), { external: true })).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const page = all.slice(offset, offset + limit).map((checkpoint) => checkpointView(checkpoint, modelIds.get(checkpoint.runId) ?? checkpoint.runId));
    return c.json({ checkpoints: page, cursor: { offset, limit, total_count: all.length } });
  });

  app.get(`${CHECKPOINT}/archive`, async (c) => {
    const checkpoint = await checkpointOf(c);
    return c.redirect(await training.checkpoints.archiveUrl(actorOf(c), checkpoint.id), 302);
  });

  /** 0.38's download (its CLI's only one): a signed URL per file of an external weights checkpoint, valid until `expires`. */
  app.get(`${CHECKPOINT}/external_weights_urls`, async (c) => {
    const checkpoint = await checkpointOf(c);
    if (checkpoint.target !== 'external') {
      throw new ValidationError(
        `${tinkerCheckpointId(checkpoint)} is ${checkpointKind(checkpoint.target)}; only external weights (save_weights_external) have external_weights_urls. Export it with save_weights_external, or download it whole with GET …/archive.`,
      );
    }
    const { files, expiresAt } = await training.checkpoints.fileUrls(actorOf(c), checkpoint.id);
    const answer: ExternalWeightsUrls = { urls: Object.fromEntries(files.map((file) => [file.relative_file_name, file.url])), expires: expiresAt };
    return c.json(answer);
  });

  app.delete(CHECKPOINT, async (c) => {
    const checkpoint = await checkpointOf(c);
    await training.checkpoints.remove(actorOf(c), checkpoint.id);
    return c.body(null, 204);
  });

  /** Public: every user may sample it, train from it and describe it by its tinker:// path. */
  app.post(`${CHECKPOINT}/publish`, async (c) => {
    const checkpoint = await checkpointOf(c);
    await training.checkpoints.setPublic(actorOf(c), checkpoint.id, true);
    return c.body(null, 204);
  });

  /** Private again: only its owner reads it. */
  app.delete(`${CHECKPOINT}/publish`, async (c) => {
    const checkpoint = await checkpointOf(c);
    await training.checkpoints.setPublic(actorOf(c), checkpoint.id, false);
    return c.body(null, 204);
  });

  /** `{ttl_seconds}`: the checkpoint expires that long from now (shown as `expires_at`), or never with null. */
  app.put(`${CHECKPOINT}/ttl`, async (c) => {
    const { ttl_seconds: ttlSeconds } = await readJson(c, SetCheckpointTtlRequest);
    const checkpoint = await checkpointOf(c);
    await training.checkpoints.setTimeToLive(actorOf(c), checkpoint.id, ttlSeconds);
    return c.body(null, 204);
  });
}
