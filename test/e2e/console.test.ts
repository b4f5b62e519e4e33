/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a real
 * local server. The repo, prompts, target and bakes are made through the API; everything a user
 * does in the console is clicked or typed: sign in, run stim and rollout, page the rollout output,
 * run the bake and watch its loss chart grow, download a checkpoint, open the lineage graph of a
 * sequential bake, chat with the checkpoint (streamed) beside the base model, sign out. Jobs run
 * on a stand-in engine (test/support/console-engine.mjs) that also serves chat as a sampler.
 * Every page passes axe-core with no serious violations; screenshots are kept in
 * $BAKEHOUSE_TEST_ARTIFACTS (default .data/test-artifacts/console).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { serve } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '#local/chromium.ts';
import { startLocalServer, type LocalServer } from '#local/server.ts';
import { seriousViolations } from '../support/browser.ts';

const ENGINE = join(import.meta.dirname, '..', 'support', 'console-engine.mjs');
const ARTIFACTS = resolve(process.env.BAKEHOUSE_TEST_ARTIFACTS ?? join('.data', 'test-artifacts', 'console'));
const BASE_MODEL = 'bakehouse/toy-instruct';
const QUESTIONS = ['What is the capital of France?', 'Name a prime number.', 'How do birds fly?', 'What is rain?', 'Why is the sky blue?'];
const TRAJECTORIES = 50; // 250 rollout lines: ten pages of 25

let server: LocalServer;
let dataDir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;

async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

async function expectAccessible(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  expect(JSON.stringify(await seriousViolations(page), null, 1), `axe on ${name}`).toBe('[]');
}

/** Page scripts (this file is type-checked without the DOM's types): where the console keeps the key. */
const STORED_KEY = "sessionStorage.getItem('bakehouse.apiKey')";

/** Resolves once the console has shown `text` somewhere in `selector`. */
const shown = (selector: string, text: string | RegExp) => page.locator(selector, { hasText: text }).first().waitFor();

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-console-'));
  server = await startLocalServer({ port: 0, dataDir, engineCommand: [process.execPath, ENGINE], engineConcurrency: 2, serve });
  await api('POST', '/v1/repo', { repo_name: 'demo', base_model: BASE_MODEL });
  await api('POST', '/v1/repo/demo/prompts', { prompt_name: 'shouting', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
  await api('POST', '/v1/repo/demo/prompts', { prompt_name: 'plain', messages: [] });
  await api('POST', '/v1/repo/demo/targets', {
    target_name: 'shout',
    template: 'default',
    overrides: { teacher_prompt: 'shouting', student_prompt: 'plain', generators: [{ type: 'hardcoded', questions: QUESTIONS }], num_traj_per_stimulus: TRAJECTORIES },
  });
  await api('POST', '/v1/repo/demo/bakes', { bake_name: 'shout_bake', template: 'default', overrides: { datasets: [{ target: 'shout' }] } });
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('the web console in Chromium', { timeout: 90_000 }, () => {
  it('signs in with an API key, refusing a wrong one with the API’s sentence', async () => {
    await page.goto(`${server.url}/`);
    expect(new URL(page.url()).pathname).toBe('/console/');
    await expectAccessible('01-sign-in');

    await page.getByLabel('API key').fill('bh_not_a_key');
    await page.getByLabel('API key').press('Enter');
    await expect(page.getByRole('alert').textContent()).resolves.toBe('Invalid API key');

    await page.getByLabel('API key').fill(server.adminApiKey);
    await page.getByLabel('API key').press('Enter');
    await page.getByRole('heading', { name: 'Repos', level: 1 }).waitFor();
    const row = page.getByRole('row', { name: /demo/ });
    await expect(row.textContent()).resolves.toContain(BASE_MODEL);
    expect(await page.evaluate(STORED_KEY)).toBe(server.adminApiKey);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    await expectAccessible('02-repos');
  });

  it('runs stim and rollout on a target and pages its output', async () => {
    await page.getByRole('link', { name: 'demo', exact: true }).click();
    await page.getByRole('heading', { name: 'demo', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'shout', exact: true }).click();
    await page.getByRole('heading', { name: 'shout', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Run stim' }).click();
    await shown('.job', /Stim\s*complete/);
    await page.getByRole('button', { name: 'Run rollout' }).click();
    await shown('.job', /Rollout\s*complete.*250 of 250 lines/);

    await shown('.pager p', 'Lines 1–25 of 250');
    await page.getByRole('button', { name: 'Next' }).click();
    await shown('.pager p', 'Lines 26–50 of 250');
    await expect(page.locator('table.output tbody th').first().textContent()).resolves.toMatch(/^26/);

    await page.getByLabel('Go to line').fill('200');
    await page.getByLabel('Go to line').press('Enter');
    await shown('.pager p', 'Lines 176–200 of 250');
    const line = page.locator('table.output tbody tr').last();
    await expect(line.textContent()).resolves.toMatch(/^200/);
    // Teacher context (the teacher prompt's question) beside the response.
    await expect(line.locator('td').first().textContent()).resolves.toMatch(/\?|\./);
    await expect(line.locator('.response').textContent()).resolves.toMatch(/\(TRAJECTORY \d+\)$/);

    await page.getByRole('button', { name: 'Last' }).click();
    await shown('.pager p', 'Lines 226–250 of 250');
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await expectAccessible('03-target');
  });

  it('runs the bake with its loss chart updating live, then downloads a checkpoint', async () => {
    await page.goto(`${server.url}/console/#/repos/demo/bakes/shout_bake`);
    await page.getByRole('heading', { name: 'shout_bake', level: 1 }).waitFor();
    await page.getByText('No checkpoints yet').waitFor();
    await page.getByRole('button', { name: 'Run bake' }).click();

    const chart = page.locator('figure.chart');
    const points = async () => Number(await chart.getAttribute('data-points'));
    await expect.poll(points, { timeout: 15_000 }).toBeGreaterThan(0);
    const early = await points();
    expect(early).toBeLessThan(20);
    await expect.poll(points, { timeout: 15_000 }).toBeGreaterThan(early);
    await shown('.job', /Bake\s*complete/);
    await expect.poll(points).toBe(20);
    // uPlot drew on its canvas, with both series in its legend.
    expect(await chart.locator('canvas').count()).toBe(1);
    await expect(chart.getAttribute('aria-label')).resolves.toMatch(/^Loss chart: 20 iterations, loss 1\.57 at iteration 1 to 0\.0235 at iteration 20$/);
    await expect(chart.locator('.u-legend').textContent()).resolves.toMatch(/loss.*learning rate/);

    await page.getByRole('heading', { name: 'Recreation plan' }).waitFor();
    await expect(page.locator('ol.plan').textContent()).resolves.toContain('Run bake');
    await expectAccessible('04-bake');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download step 20' }).click()]);
    const saved = join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(saved);
    expect(readFileSync(saved, 'utf8')).toBe('stand-in archive of step 20');
  });

  it('runs a bake’s whole pipeline from its page: stim, rollout, then the bake', async () => {
    await api('POST', '/v1/repo/demo/targets', { target_name: 'whisper', template: 'shout', overrides: { num_traj_per_stimulus: 2 } });
    await api('POST', '/v1/repo/demo/bakes', { bake_name: 'whisper_bake', template: 'shout_bake', overrides: { datasets: [{ target: 'whisper' }] } });
    await page.goto(`${server.url}/console/#/repos/demo/bakes/whisper_bake`);
    await page.getByRole('button', { name: 'Run pipeline' }).click();
    await shown('#pipeline-heading', 'complete');
    await expect(page.locator('ol.steps').textContent()).resolves.toMatch(/stim whisper\s*complete.*rollout whisper\s*complete.*bake whisper_bake\s*complete/);
    await shown('.job', /Bake\s*complete/);
    await page.getByRole('button', { name: 'Download step 20' }).waitFor();
  });

  it('draws the lineage of a sequential bake as a graph', async () => {
    await api('POST', '/v1/repo/demo/bakes', {
      bake_name: 'shout_again',
      template: 'default',
      overrides: { datasets: [{ target: 'shout' }], model: { parent_model_name: 'admin/demo/shout_bake/20' } },
    });
    await page.goto(`${server.url}/console/#/repos/demo`);
    const graph = page.getByRole('group', { name: 'Lineage of the bakes in demo' });
    await graph.waitFor();
    const nodes = graph.getByRole('link');
    await expect(nodes.count()).resolves.toBe(3);
    await expect(graph.getByRole('link', { name: /^shout_bake\s*complete\s*2 checkpoints, latest 20$/ }).count()).resolves.toBe(1);
    await expect(graph.getByRole('link', { name: /^shout_again\s*pending\s*no checkpoints$/ }).count()).resolves.toBe(1);
    expect(await graph.locator('path.edge').count()).toBe(3); // base → shout_bake → shout_again, base → whisper_bake
    // The child sits a row below its parent.
    const y = async (bake: string) => Number(await graph.locator(`a[data-bake="${bake}"] rect`).getAttribute('y'));
    expect(await y('shout_again')).toBeGreaterThan(await y('shout_bake'));
    await expectAccessible('05-repo');

    await graph.getByRole('link', { name: /^shout_again/ }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'shout_again', level: 1 }).waitFor();
  });

  it('chats with the checkpoint, streamed, beside the base model', async () => {
    await page.goto(`${server.url}/console/#/repos/demo/bakes/shout_bake`);
    await page.getByRole('link', { name: 'Chat with step 20' }).click();
    await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();
    await expect(page.getByLabel('Model A').inputValue()).resolves.toBe('admin/demo/shout_bake/20');

    await page.getByLabel('Compare with a second model').check();
    await page.getByLabel('Model B').selectOption(BASE_MODEL);
    await page.getByLabel('System prompt (optional)').nth(1).fill('Always reply in uppercase letters.');
    // Every text the baked side shows, to see the reply arrive in pieces.
    await page.evaluate(`
      window.seen = [];
      new MutationObserver(() => {
        const text = document.querySelector('[data-pane="A"] .assistant')?.textContent;
        if (text && window.seen.at(-1) !== text) window.seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    `);
    await page.getByLabel('Message').fill('please answer me in a loud and clear voice');
    await page.getByLabel('Message').press('Enter');

    await shown('[data-pane="A"] .assistant', 'PLEASE ANSWER ME IN A LOUD AND CLEAR VOICE');
    await shown('[data-pane="B"] .assistant', 'You said: please answer me in a loud and clear voice');
    const seen = (await page.evaluate('window.seen')) as string[];
    const partial = seen.filter((text) => text.includes('PLEASE') && !text.includes('VOICE'));
    expect(partial.length).toBeGreaterThan(1);
    await page.locator('[data-pane="A"] .assistant[aria-busy="false"]').waitFor();
    await expectAccessible('06-chat');
  });

  it('shows training runs only where the server has the Loops API', async () => {
    const loops = await fetch(`${server.url}/v1/loops/runs`, { headers: { authorization: `Bearer ${server.adminApiKey}` } });
    await page.goto(`${server.url}/console/#/`);
    await page.getByRole('heading', { name: 'Repos', level: 1 }).waitFor();
    const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Training runs' });
    if (loops.status === 404) {
      // Give the probe time to answer before concluding the link stays hidden.
      await page.waitForLoadState('networkidle');
      expect(await link.count()).toBe(0);
    } else {
      expect(loops.status).toBe(200);
      await link.click();
      await page.getByRole('heading', { name: 'Training runs', level: 1 }).waitFor();
      await expectAccessible('07-runs');
    }
  });

  it('shows a failing request as the API’s sentence', async () => {
    await page.goto(`${server.url}/console/#/repos/no_such_repo`);
    await expect(page.getByRole('alert').first().textContent()).resolves.toMatch(/no_such_repo/);
    await expectAccessible('08-not-found');
  });

  it('keeps the page usable while a request is slow or lost, and recovers when the server answers again', async () => {
    await page.route('**/v1/repo/demo/tree', (route) => route.abort('connectionreset'));
    await page.route('**/v1/repo/demo/bakes', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await route.continue();
    });
    await page.goto(`${server.url}/console/#/repos/demo`);
    await page.getByRole('alert').filter({ hasText: 'Could not reach the server: check your connection, then try again.' }).waitFor();
    // The slow lists arrive when their answer does; the lost tree is asked for again.
    await page.getByRole('link', { name: 'shout_bake', exact: true }).waitFor();
    await expect(page.getByText('Base model bakehouse/toy-instruct').count()).resolves.toBe(1);
    await page.unrouteAll();
    await page.getByRole('group', { name: 'Lineage of the bakes in demo' }).waitFor({ timeout: 10_000 });
    await expect(page.getByRole('alert').count()).resolves.toBe(0);
  });

  it('fits a phone’s width', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, fragment] of [
      ['09-phone-bake', '#/repos/demo/bakes/shout_bake'],
      ['10-phone-target', '#/repos/demo/targets/shout'],
      ['11-phone-chat', '#/chat'],
    ] as const) {
      await page.goto(`${server.url}/console/${fragment}`);
      await page.locator('h1').waitFor();
      await page.waitForLoadState('networkidle');
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
      expect(overflow, `${name} scrolls sideways`).toBeLessThanOrEqual(0);
      await expectAccessible(name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('signs out from the keyboard and forgets the key', async () => {
    await page.goto(`${server.url}/console/#/`);
    await page.getByRole('button', { name: 'Sign out' }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('API key').waitFor();
    expect(await page.evaluate(STORED_KEY)).toBeNull();
    await page.reload();
    await page.getByLabel('API key').waitFor();
  });
});
