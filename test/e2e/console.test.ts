/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a real
 * local server running the real engine on the toy model. The repo, prompts, target and bakes are
 * made through the API; everything a user does in the console is clicked or typed: sign in, run
 * stim and rollout, page the rollout output, run the bake and watch its loss chart grow, download
 * a checkpoint, open the lineage graph of a sequential bake, chat with the checkpoint (streamed)
 * beside the base model, watch a training run's loss per step as a Loops client trains it, sign
 * out. The target and bake are as small as the toy model allows, so the scenario takes minutes on
 * two cores. Every page passes axe-core with no serious violations; screenshots are kept in
 * $BAKEHOUSE_TEST_ARTIFACTS (default .data/test-artifacts/console).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { serve } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '#local/chromium.ts';
import { startLocalServer, type LocalServer } from '#local/server.ts';
import { seriousViolations } from '../support/browser.ts';

const ARTIFACTS = resolve(process.env.BAKEHOUSE_TEST_ARTIFACTS ?? join('.data', 'test-artifacts', 'console'));
const BASE_MODEL = 'bakehouse/toy-instruct';
const QUESTIONS = ['What is the capital of France?', 'Name a prime number.', 'How do birds fly?', 'What is rain?', 'Why is the sky blue?'];
const TRAJECTORIES = 12; // 60 rollout lines: three pages of 25
/** Short replies and three epochs of small micro-batches (45 iterations): long enough for the loss chart to be seen growing. */
const TARGET = { max_tokens: 24, temperature: 1.0 };
const BAKE = { epochs: 3, micro_batch_size: 4, optimizer: { learning_rate: 0.002 }, model: { baked_adapter_config: { r: 8, lora_alpha: 16, target_modules: 'all-linear' } } };

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
const shown = (selector: string, text: string | RegExp, timeout?: number) => page.locator(selector, { hasText: text }).first().waitFor({ timeout });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'bakehouse-console-'));
  // Chat's sampler and the training run's trainer are long-running jobs: room for them beside a bake.
  server = await startLocalServer({ port: 0, dataDir, engineConcurrency: 3, serve });
  await api('POST', '/v1/repo', { repo_name: 'demo', base_model: BASE_MODEL });
  await api('POST', '/v1/repo/demo/prompts', { prompt_name: 'shouting', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
  await api('POST', '/v1/repo/demo/prompts', { prompt_name: 'plain', messages: [] });
  await api('POST', '/v1/repo/demo/targets', {
    target_name: 'shout',
    template: 'default',
    overrides: { teacher_prompt: 'shouting', student_prompt: 'plain', generators: [{ type: 'hardcoded', questions: QUESTIONS }], num_traj_per_stimulus: TRAJECTORIES, ...TARGET },
  });
  await api('POST', '/v1/repo/demo/bakes', { bake_name: 'shout_bake', template: 'default', overrides: { datasets: [{ target: 'shout' }], ...BAKE } });
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

/** Submits an operation to a Loops run's trainer (its data plane) and polls it until it is answered. */
async function trainerOperation(run: { base_url: string }, op: string, body: unknown): Promise<Record<string, unknown>> {
  const { operation_id } = (await dataPlane('POST', `${run.base_url}/${op}`, body)) as { operation_id: string };
  for (;;) {
    const answer = await fetch(`${run.base_url}/operations/${operation_id}`, { headers: { authorization: `Api-Key ${server.adminApiKey}` } });
    if (answer.status === 408) continue; // held 20 s while the trainer starts or works
    const result = (await answer.json()) as { status: string; error?: string; result?: Record<string, unknown> };
    if (answer.status !== 200 || result.status !== 'done') throw new Error(`${op} answered ${answer.status}: ${JSON.stringify(result)}`);
    return result.result!;
  }
}

async function dataPlane(method: string, url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, { method, headers: { authorization: `Api-Key ${server.adminApiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  if (response.status !== 202) throw new Error(`${method} ${url} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

/** The newest checkpoint of a completed bake, as `user/repo/bake/step`. */
async function latestCheckpoint(bake: string): Promise<string> {
  const status = (await api('GET', `/v1/repo/demo/bakes/${bake}`)) as { model_name?: string[] };
  const latest = status.model_name?.[0];
  if (!latest) throw new Error(`bake ${bake} has no checkpoint`);
  return latest;
}

// The engine trains and generates on the CPU: a step takes tens of seconds, not one.
describe('the web console in Chromium', { timeout: 180_000 }, () => {
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
    await shown('.job', /Stim\s*complete/, 60_000);
    await page.getByRole('button', { name: 'Run rollout' }).click();
    await shown('.job', /Rollout\s*complete.*60 of 60 lines/, 120_000);

    await shown('.pager p', 'Lines 1–25 of 60');
    await page.getByRole('button', { name: 'Next' }).click();
    await shown('.pager p', 'Lines 26–50 of 60');
    // The label and the rows describe the same answer: no moment shows one page's label over another's lines.
    await expect(page.locator('table.output tbody th').first().textContent()).resolves.toMatch(/^26/);

    await page.getByLabel('Go to line').fill('10');
    await page.getByLabel('Go to line').press('Enter');
    await shown('.pager p', 'Lines 1–25 of 60');
    const line = page.locator('table.output tbody tr').nth(9);
    await expect(line.textContent()).resolves.toMatch(/^10/);
    // Teacher context (the teacher prompt's question) beside the toy model's response.
    await expect(line.locator('td').first().textContent()).resolves.toMatch(/\?|\./);
    await expect(line.locator('.response').textContent()).resolves.toMatch(/\S/);

    await page.getByRole('button', { name: 'Last' }).click();
    await shown('.pager p', 'Lines 51–60 of 60');
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await expectAccessible('03-target');
  });

  it('runs the bake with its loss chart updating live, then downloads a checkpoint', async () => {
    await page.goto(`${server.url}/console/#/repos/demo/bakes/shout_bake`);
    await page.getByRole('heading', { name: 'shout_bake', level: 1 }).waitFor();
    await page.getByText('No checkpoints yet').waitFor();
    // Made from the built-in template: named in plain text, with nothing to link to.
    const configuration = page.getByRole('region', { name: 'Configuration' });
    await expect(configuration.getByText('Template: default').count()).resolves.toBe(1);
    await expect(configuration.getByRole('link', { name: 'default' }).count()).resolves.toBe(0);
    await page.getByRole('button', { name: 'Run bake' }).click();

    const chart = page.locator('figure.chart');
    const points = async () => Number(await chart.getAttribute('data-points'));
    // What the chart showed while the bake ran: it grows in place rather than appearing at the end.
    const seen = new Set<number>();
    const ended = page.locator('.job', { hasText: /Bake\s*(complete|failed)/ });
    while (!(await ended.count())) {
      seen.add(await points());
      await page.waitForTimeout(250);
    }
    await expect(ended.textContent(), (await page.getByRole('alert').allTextContents()).join(' ')).resolves.toMatch(/complete/);
    const iterations = ((await api('GET', '/v1/repo/demo/bakes/shout_bake/metrics')) as { iter: number }[]).length;
    expect(iterations).toBeGreaterThan(2);
    await expect.poll(points).toBe(iterations);
    expect([...seen].some((count) => count > 0 && count < iterations), `points seen while baking: ${[...seen].join(', ')}`).toBe(true);
    // uPlot drew on its canvas, with both series in its legend.
    expect(await chart.locator('canvas').count()).toBe(1);
    await expect(chart.getAttribute('aria-label')).resolves.toMatch(new RegExp(`^Loss chart: ${iterations} iterations, loss [\\d.e+-]+ at iteration 1 to [\\d.e+-]+ at iteration ${iterations}$`));
    await expect(chart.locator('.u-legend').textContent()).resolves.toMatch(/loss.*learning rate/);

    await page.getByRole('heading', { name: 'Recreation plan' }).waitFor();
    await expect(page.locator('ol.plan').textContent()).resolves.toContain('Run bake');
    await expectAccessible('04-bake');

    const step = (await latestCheckpoint('shout_bake')).split('/').at(-1);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: `Download step ${step}` }).click()]);
    const saved = join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(saved);
    // The checkpoint's archive: the LoRA adapter PEFT loads.
    expect(execFileSync('tar', ['-tzf', saved], { encoding: 'utf8' })).toMatch(/adapter_model\.safetensors/);
  });

  it('runs a bake’s whole pipeline from its page: stim, rollout, then the bake', async () => {
    await api('POST', '/v1/repo/demo/targets', { target_name: 'whisper', template: 'shout', overrides: { num_traj_per_stimulus: 2 } });
    await api('POST', '/v1/repo/demo/bakes', { bake_name: 'whisper_bake', template: 'shout_bake', overrides: { datasets: [{ target: 'whisper' }] } });
    await page.goto(`${server.url}/console/#/repos/demo/bakes/whisper_bake`);
    await page.getByRole('button', { name: 'Run pipeline' }).click();
    await shown('#pipeline-heading', 'complete', 150_000);
    await expect(page.locator('ol.steps').textContent()).resolves.toMatch(/stim whisper\s*complete.*rollout whisper\s*complete.*bake whisper_bake\s*complete/);
    await shown('.job', /Bake\s*complete/);
    const step = (await latestCheckpoint('whisper_bake')).split('/').at(-1);
    await page.getByRole('button', { name: `Download step ${step}` }).waitFor();
    // Made from shout_bake: the configuration links to the template's page.
    const template = page.getByRole('region', { name: 'Configuration' }).getByRole('link', { name: 'shout_bake', exact: true });
    await expect(template.getAttribute('href')).resolves.toBe('#/repos/demo/bakes/shout_bake');
    await template.click();
    await page.getByRole('heading', { name: 'shout_bake', level: 1 }).waitFor();
  });

  it('draws the lineage of a sequential bake as a graph', async () => {
    const parent = await latestCheckpoint('shout_bake');
    await api('POST', '/v1/repo/demo/bakes', {
      bake_name: 'shout_again',
      template: 'default',
      overrides: { datasets: [{ target: 'shout' }], ...BAKE, model: { ...BAKE.model, parent_model_name: parent } },
    });
    await page.goto(`${server.url}/console/#/repos/demo`);
    const graph = page.getByRole('group', { name: 'Lineage of the bakes in demo' });
    await graph.waitFor();
    const nodes = graph.getByRole('link');
    await expect(nodes.count()).resolves.toBe(3);
    const latest = parent.split('/').at(-1);
    await expect(graph.getByRole('link', { name: new RegExp(`^shout_bake\\s*complete\\s*(\\d+ checkpoints|1 checkpoint), latest ${latest}$`) }).count()).resolves.toBe(1);
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
    const checkpoint = await latestCheckpoint('shout_bake');
    await page.goto(`${server.url}/console/#/repos/demo/bakes/shout_bake`);
    await page.getByRole('link', { name: `Chat with step ${checkpoint.split('/').at(-1)}` }).click();
    await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();
    await expect(page.getByLabel('Model A').inputValue()).resolves.toBe(checkpoint);

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

    // The toy model's replies: the samplers load the model and the adapter first.
    for (const pane of ['A', 'B']) await page.locator(`[data-pane="${pane}"] .assistant[aria-busy="false"]`).waitFor({ timeout: 120_000 });
    const roles = { A: checkpoint.split('/').slice(-2).join('/'), B: BASE_MODEL };
    for (const [pane, role] of Object.entries(roles)) {
      const text = (await page.locator(`[data-pane="${pane}"] .assistant`).textContent()) ?? '';
      expect(text.startsWith(role) && text.slice(role.length).trim().length > 0, `pane ${pane}: ${text}`).toBe(true);
    }
    // The baked side's reply grew in several pieces, each the start of the whole.
    const seen = ((await page.evaluate('window.seen')) as string[]).map((text) => text.replace(/ …$/, ''));
    const reply = seen.at(-1)!;
    expect(seen.length).toBeGreaterThan(2);
    expect(seen.every((text) => reply.startsWith(text)), seen.join(' | ')).toBe(true);
    await expectAccessible('06-chat');
  });

  it('charts a training run’s loss per step while a Loops client trains it on the real trainer, and links its checkpoint’s files', async () => {
    const { session } = (await api('POST', '/v1/loops/sessions', {})) as { session: { id: string } };
    const { run } = (await api('POST', '/v1/loops/trainers', { session_id: session.id, base_model: BASE_MODEL, lora_rank: 8, name: 'toy_loop' })) as {
      run: { id: string; base_url: string };
    };
    await page.goto(`${server.url}/console/#/`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Training runs' }).click();
    await page.getByRole('heading', { name: 'Training runs', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Show toy_loop' }).click();
    await page.getByText('No checkpoints saved yet.').waitFor();
    const chart = page.locator('#run-details figure.chart');
    const points = async () => Number(await chart.getAttribute('data-points'));
    expect(await points()).toBe(0);

    // What the SDK does for a supervised step, over plain HTTP: forward_backward, then optim_step.
    const tokens = [11, 12, 13, 14, 15, 16, 17, 18];
    const datum = {
      model_input: { chunks: [{ type: 'encoded_text', tokens: tokens.slice(0, -1) }] },
      loss_fn_inputs: { target_tokens: { data: tokens.slice(1), dtype: 'int64', shape: [7] }, weights: { data: Array(7).fill(1), dtype: 'float32', shape: [7] } },
    };
    for (let step = 1; step <= 3; step++) {
      await trainerOperation(run, 'forward_backward', { run_id: run.id, data: [datum], loss_fn: 'cross_entropy' });
      await trainerOperation(run, 'optim_step', { run_id: run.id, adam_params: { learning_rate: 0.01 } });
      await expect.poll(points, { timeout: 10_000 }).toBe(step);
    }
    await trainerOperation(run, 'save_weights_for_sampler', { run_id: run.id, name: 'after_3' });
    await expect(chart.getAttribute('aria-label')).resolves.toMatch(/^Loss chart: 3 steps, loss [\d.e+-]+ at step 1 to [\d.e+-]+ at step 3$/);
    const file = page.getByRole('link', { name: 'Download adapter_model.safetensors of after_3' });
    await file.waitFor();
    const weights = await fetch(new URL((await file.getAttribute('href'))!, server.url));
    expect(weights.status).toBe(200);
    expect((await weights.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    await expectAccessible('07-runs');
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
    // Navigation moves focus to the page once it has rendered; focus the button only after that.
    await page.getByRole('heading', { name: 'Repos', level: 1 }).waitFor();
    await expect.poll(() => page.evaluate('document.activeElement?.tagName')).toBe('H1');
    await page.getByRole('button', { name: 'Sign out' }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('API key').waitFor();
    expect(await page.evaluate(STORED_KEY)).toBeNull();
    await page.reload();
    await page.getByLabel('API key').waitFor();
  });
});
