/**
 * The Tinker start-up sequence and probes (loops-api.md §2.3, §2.14): client config flags,
 * dynamic config, sessions with their heartbeat and finish, health, capabilities and telemetry.
 */
import type { Context } from 'hono';
import { RunInactiveError } from '#core/errors.ts';
import type { Services } from '#core/services.ts';
import { ClientConfigRequest, CreateSessionRequest, SessionRequest } from '#schemas/tinker.ts';
import type { AppEnv } from '../../env.ts';
import type { App } from '../../openapi.ts';
import { API, readJson } from './requests.ts';

/**
 * Flags chosen rather than left to the SDK's defaults: forward_backward bodies as zstd-compressed
 * protobuf (0.22.3+; the codec decodes both), models made from a checkpoint in one
 * session-addressed `load_weights` (0.25 as 0.38 always does), httpx as the transport (the one the
 * config fetch itself uses), and no JWT exchange, server-side custom losses or sample cancelling.
 */
export const CLIENT_CONFIG = {
  pjwt_auth_enabled: false,
  proto_write_fwdbwd: true,
  proto_compress_fwdbwd: true,
  create_model_via_load_weights: true,
  use_pyqwest_transport: false,
  custom_loss_server_side: false,
  sample_use_retrieve_futures: false,
  sample_join_sampling_session: false,
} as const;

export const DYNAMIC_CONFIG = { refresh_interval_sec: 300, sample_cancel_enabled: false } as const;

export function sessionRoutes(app: App, services: Services): void {
  const { sessions } = services.training;
  const actorOf = (c: Context<AppEnv>) => c.get('actor');

  app.post(`${API}/client/config`, async (c) => {
    await readJson(c, ClientConfigRequest);
    return c.json(CLIENT_CONFIG);
  });

  app.post(`${API}/client/dynamic_config`, async (c) => {
    await readJson(c, ClientConfigRequest);
    return c.json(DYNAMIC_CONFIG);
  });

  app.post(`${API}/create_session`, async (c) => {
    const body = await readJson(c, CreateSessionRequest);
    const session = await sessions.create(actorOf(c), { trainingProjectId: body.project_id ?? null });
    return c.json({ session_id: session.id, type: 'create_session' });
  });

  /** 410 once the session finished: 0.38 stops its heartbeat on it. */
  app.post(`${API}/session_heartbeat`, async (c) => {
    const session = await sessions.get(actorOf(c), (await readJson(c, SessionRequest)).session_id);
    if (session.finishedAt !== null) throw new RunInactiveError(`Session ${session.id} finished at ${session.finishedAt}; create a new session to continue.`);
    return c.json({ type: 'session_heartbeat' });
  });

  app.post(`${API}/sessions/:sessionId/finish`, async (c) => {
    await sessions.finish(actorOf(c), c.req.param('sessionId'));
    return c.json({});
  });

  app.get(`${API}/healthz`, (c) => c.json({ status: 'ok' }));

  app.get(`${API}/get_server_capabilities`, (c) =>
    c.json({ supported_models: services.models.baseModels().map((model_name) => ({ model_name, trainable: true, sampleable: true })) }),
  );

  /** The SDK reports its own errors here; this server keeps none of them. */
  app.post(`${API}/telemetry`, (c) => c.json({ status: 'accepted' }));
}
