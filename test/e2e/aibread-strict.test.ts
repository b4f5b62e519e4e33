/**
 * The official Python client (`aibread` on PyPI) with strict response validation against a real
 * local server: every response it parses must match its pydantic models, so a null where it types
 * a number (a running bake's `final_loss`, say) fails the call. Jobs run on a stand-in engine
 * (test/support/stand-in-engine.mjs) that keeps the bake running until the client lets it finish.
 * The client's environment is test/clients/.venv (`npm run setup`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server.ts';
import { standInEngineCommand } from '#test/support/stand-in-engine-command.ts';

const CLIENTS = join(import.meta.dirname, '..', 'clients');
const PYTHON = join(CLIENTS, '.venv', 'bin', 'python');

let server: LocalServer;
let dataDir: string;
let holdFile: string;

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: create it with \`npm run setup\` (test/clients/setup_env.sh).`);
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-aibread-'));
  holdFile = join(dataDir, 'hold-bake');
  server = await startLocalServer({
    port: 0,
    dataDir,
    adminApiKey: 'aibread-strict-admin-key',
    engineCommand: standInEngineCommand({ holdWhile: holdFile }),
    serve,
  });
});

afterAll(async () => {
  rmSync(holdFile ?? '', { force: true }); // lets a held bake finish if the client stopped early
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Runs test/clients/aibread_strict.py; a failed call fails with the client's own error. */
async function runClient(): Promise<Record<string, Record<string, unknown>>> {
  try {
    const { stdout } = await promisify(execFile)(PYTHON, [join(CLIENTS, 'aibread_strict.py'), holdFile], {
      env: { ...process.env, BREAD_BASE_URL: server.url, BREAD_API_KEY: server.adminApiKey },
      timeout: 150_000,
    });
    return JSON.parse(stdout) as Record<string, Record<string, unknown>>;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`aibread_strict.py failed:\n${stderr ?? String(error)}`, { cause: error });
  }
}

describe('aibread with _strict_response_validation against a local server', { timeout: 180_000 }, () => {
  it('accepts every main read route, a running bake and a finished one', async () => {
    writeFileSync(holdFile, '');
    const seen = await runClient();

    expect(seen['health.check']).toMatchObject({ status: 'healthy' });
    expect(seen['repo.list.metadata']).toMatchObject({ repos: [{ repo_name: 'strict_repo', base_model: 'bakehouse/toy-instruct' }], has_more: false });
    expect(seen['targets.get']).toMatchObject({ target_name: 'shout', config: { teacher_prompt: 'teacher', num_traj_per_stimulus: 2 } });
    expect(seen['stim.get.complete']).toMatchObject({ status: 'complete', lines: 3 });
    expect(seen['rollout.get.complete']).toMatchObject({ status: 'complete', lines: 6, total_expected: 6 });
    expect(seen['rollout.get_output']).toMatchObject({ offset: 1, limit: 2, has_more: true });

    // While running: the loss so far, with no final loss yet (left out, not null).
    expect(seen['bakes.get.running']).toMatchObject({ status: 'running', progress_percent: 50, model_name: null });
    expect(seen['bakes.get.running']!.loss).toStrictEqual({ latest_loss: 0.75, min_loss: 0.75, max_loss: 2.5 });
    expect(seen['repo.get_tree.running']).toMatchObject({ bakes: { shout_bake: { status: 'running' } } });

    expect(seen['bakes.get.complete']).toMatchObject({
      status: 'complete',
      progress_percent: 100,
      model_name: ['admin/strict_repo/shout_bake/2'],
      loss: { latest_loss: 0.75, final_loss: 0.75, min_loss: 0.75, max_loss: 2.5 },
    });
    expect(seen['bakes.get_metrics.complete']).toHaveLength(2);
    expect(seen['bakes.download']).toMatchObject({ bake_name: 'shout_bake', checkpoint: 2 });
    expect(seen['repo.get_tree.complete']).toMatchObject({ bakes: { shout_bake: { status: 'complete', checkpoints: [2] } } });
    expect(seen['recipes.get_recreation_plan']).toMatchObject({ base_model: 'bakehouse/toy-instruct' });
  });
});
