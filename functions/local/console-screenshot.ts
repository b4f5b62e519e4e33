/**
 * `npm run screenshot:console`: the README's picture of the web console, from a real run. A
 * local server with the real engine and the toy model; the demo's bake (functions/local/
 * demo-recipe.ts) made through the API; then, in Chromium, a user signs in, runs the bake's whole
 * pipeline from its page and waits for it to finish; the bake page, loss curve and checkpoints
 * included, is saved as functions/console/screenshot.png. Takes a few minutes on two CPU cores.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { launchChromium } from './chromium.ts';
import { DEMO_BAKE, TEACHER_PROMPT, TOY_MODEL } from './demo-recipe.ts';
import { startLocalServer } from './server.ts';

const OUTPUT = join(import.meta.dirname, '..', 'console', 'screenshot.png');
const PIPELINE_TIMEOUT_MS = 20 * 60_000;

const dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-console-screenshot-'));
const server = await startLocalServer({ port: 0, dataDir, serve });
const browser = await launchChromium();
try {
  const api = async (path: string, body: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
  };
  await api('/v1/repo', { repo_name: 'demo', base_model: TOY_MODEL });
  await api('/v1/repo/demo/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: TEACHER_PROMPT }] });
  await api('/v1/repo/demo/prompts', { prompt_name: 'student', messages: [] });
  await api('/v1/repo/demo/targets', { target_name: 'uppercase', template: 'default', overrides: DEMO_BAKE.target });
  await api('/v1/repo/demo/bakes', { bake_name: 'uppercase_bake', template: 'default', overrides: DEMO_BAKE.bake });

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 });
  await page.goto(`${server.url}/`);
  await page.getByLabel('API key').fill(server.adminApiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Repos', level: 1 }).waitFor();
  await page.goto(`${server.url}/console/#/repos/demo/bakes/uppercase_bake`);
  await page.getByRole('button', { name: 'Run pipeline' }).click();
  console.log('Running the pipeline (stim, rollout, bake) on the toy model…');
  await page.locator('.job', { hasText: /Bake\s*complete/ }).waitFor({ timeout: PIPELINE_TIMEOUT_MS });
  await page.getByRole('button', { name: /^Download step/ }).first().waitFor();
  await page.screenshot({ path: OUTPUT, clip: { x: 0, y: 0, width: 1280, height: 1000 } });
  console.log(`Wrote ${OUTPUT}`);
} finally {
  await browser.close();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
