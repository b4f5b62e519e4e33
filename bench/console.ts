/**
 * `npm run bench:console`: the web console in headless Chromium (functions/local/chromium.ts)
 * against `npm start`'s embedded default, with jobs on the stand-in engine
 * (test/support/stand-in-engine.mjs). Results go to bench/results/console.json.
 *
 * 1. What the browser downloads: the built JavaScript and CSS (functions/console/dist), raw and
 *    gzipped as the server sends them.
 * 2. Time to the first rendered repo list (20 repos), signed in, from navigation start: cold (a
 *    fresh browser context, empty cache) and warm (the same context loading it again, the hashed
 *    assets from cache).
 * 3. Paging a 1,000,000-line rollout output in the console: from submitting "Go to line" to the
 *    page's rows on screen, alternating line 1 (offset 0) and line 900,001 (offset 900,000), at 25
 *    and 100 lines a page; and the API's answer alone for the same pages, as the baseline.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { serve } from '@hono/node-server';
import type { Page } from 'playwright-core';
import { launchChromium } from '#local/chromium.ts';
import { CONSOLE_ASSETS_DIR, startLocalServer } from '#local/server.ts';
import { standInEngineCommand } from '#test/support/stand-in-engine-command.ts';
import { quantile, round } from './stats.ts';

const RENDER_RUNS = Number(process.env.BENCH_CONSOLE_RENDER_RUNS ?? 10);
const PAGE_RUNS = Number(process.env.BENCH_CONSOLE_PAGE_RUNS ?? 20);
const QUESTIONS = 1_000;
const TRAJECTORIES = 1_000; // 1,000,000 rollout lines
const FAR_OFFSET = 900_000;

const ascending = (values: number[]) => [...values].sort((a, b) => a - b);
const median = (values: number[]) => round(quantile(ascending(values), 0.5));
const p95 = (values: number[]) => round(quantile(ascending(values), 0.95));

function assetSizes() {
  const dir = join(CONSOLE_ASSETS_DIR, 'assets');
  const files = readdirSync(dir);
  const sum = (extension: string, measure: (bytes: Buffer) => number) =>
    files.filter((name) => name.endsWith(extension)).reduce((total, name) => total + measure(readFileSync(join(dir, name))), 0);
  return {
    js_bytes: sum('.js', (bytes) => bytes.length),
    js_gzip_bytes: sum('.js', (bytes) => gzipSync(bytes).length),
    css_bytes: sum('.css', (bytes) => bytes.length),
    css_gzip_bytes: sum('.css', (bytes) => gzipSync(bytes).length),
  };
}

const server = await startLocalServer({ port: 0, dataDir: mkdtempSync(join(tmpdir(), 'bakehouse-bench-console-')), engineCommand: standInEngineCommand(), serve });
const browser = await launchChromium();

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminApiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

async function untilComplete(path: string): Promise<void> {
  for (;;) {
    const job = await api('GET', path);
    if (job.status === 'complete') return;
    if (job.status === 'failed') throw new Error(`${path} failed: ${String(job.error)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** A page already signed in: the key is where the sign-in form would have put it. */
async function signedInPage(context: Awaited<ReturnType<typeof browser.newContext>>): Promise<Page> {
  await context.addInitScript(`sessionStorage.setItem('bakehouse.apiKey', ${JSON.stringify(server.adminApiKey)})`);
  return context.newPage();
}

async function firstRepoList(page: Page): Promise<number> {
  await page.goto(`${server.url}/console/`);
  await page.locator('table.repos tbody tr').first().waitFor();
  return (await page.evaluate('performance.now()')) as number;
}

/** In the page: submit "Go to line" and time until that page's rows are on screen. */
function jumpScript(line: number, offset: number): string {
  return `(async () => {
    const input = document.getElementById('rollout-jump');
    input.value = '${line}';
    input.dispatchEvent(new Event('input', { bubbles: true }));
    await new Promise((next) => requestAnimationFrame(() => next()));
    const start = performance.now();
    input.form.requestSubmit();
    await new Promise((done) => {
      const check = () => (document.querySelector('table.output[data-offset="${offset}"] tbody tr') ? done() : requestAnimationFrame(check));
      check();
    });
    return performance.now() - start;
  })()`;
}

try {
  const sizes = assetSizes();

  for (let index = 0; index < 20; index++) await api('POST', '/v1/repo', { repo_name: `repo_${String(index).padStart(2, '0')}`, base_model: 'bakehouse/toy-instruct' });
  const cold: number[] = [];
  const warm: number[] = [];
  for (let run = 0; run < RENDER_RUNS; run++) {
    const context = await browser.newContext();
    const page = await signedInPage(context);
    cold.push(await firstRepoList(page));
    warm.push(await firstRepoList(page));
    await context.close();
  }

  await api('POST', '/v1/repo/repo_00/prompts', { prompt_name: 'teacher', messages: [{ role: 'system', content: 'Always reply in uppercase letters.' }] });
  await api('POST', '/v1/repo/repo_00/prompts', { prompt_name: 'student', messages: [] });
  const questions = Array.from({ length: QUESTIONS }, (_, index) => `Question number ${index + 1}: what is ${index} plus ${index}?`);
  await api('POST', '/v1/repo/repo_00/targets', {
    target_name: 'million',
    template: 'default',
    overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'hardcoded', questions }], num_traj_per_stimulus: TRAJECTORIES },
  });
  const target = '/v1/repo/repo_00/targets/million';
  await api('POST', `${target}/stim`);
  await untilComplete(`${target}/stim`);
  const writeStart = performance.now();
  await api('POST', `${target}/rollout`);
  await untilComplete(`${target}/rollout`);
  const rolloutWriteS = round((performance.now() - writeStart) / 1000);

  const paging: Record<string, { near_ms_p50: number; near_ms_p95: number; far_ms_p50: number; far_ms_p95: number; api_near_ms_p50: number; api_far_ms_p50: number }> = {};
  const context = await browser.newContext();
  const page = await signedInPage(context);
  await page.goto(`${server.url}/console/#/repos/repo_00/targets/million`);
  await page.locator('.pager p', { hasText: 'of 1,000,000' }).waitFor({ timeout: 60_000 });
  for (const size of [25, 100]) {
    await page.getByLabel('Per page').selectOption(String(size));
    const near: number[] = [];
    const far: number[] = [];
    for (let run = 0; run < PAGE_RUNS; run++) {
      far.push((await page.evaluate(jumpScript(FAR_OFFSET + 1, FAR_OFFSET))) as number);
      near.push((await page.evaluate(jumpScript(1, 0))) as number);
    }
    const apiNear: number[] = [];
    const apiFar: number[] = [];
    for (let run = 0; run < PAGE_RUNS; run++) {
      for (const [offset, into] of [[FAR_OFFSET, apiFar], [0, apiNear]] as const) {
        const start = performance.now();
        await api('GET', `${target}/rollout/output?offset=${offset}&limit=${size}`);
        into.push(performance.now() - start);
      }
    }
    paging[`limit_${size}`] = {
      near_ms_p50: median(near),
      near_ms_p95: p95(near),
      far_ms_p50: median(far),
      far_ms_p95: p95(far),
      api_near_ms_p50: median(apiNear),
      api_far_ms_p50: median(apiFar),
    };
  }
  await context.close();

  const results = {
    recorded_at: new Date().toISOString(),
    machine: { cpus: cpus().length, load_average_1m: round(loadavg()[0]!), node: process.version, chromium: browser.version() },
    bundle: sizes,
    first_repo_list_ms: { runs: RENDER_RUNS, cold_p50: median(cold), cold_p95: p95(cold), warm_p50: median(warm), warm_p95: p95(warm) },
    paging_1m_lines: { lines: QUESTIONS * TRAJECTORIES, far_offset: FAR_OFFSET, runs: PAGE_RUNS, rollout_write_s: rolloutWriteS, ...paging },
  };
  writeFileSync(join(import.meta.dirname, 'results', 'console.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  await browser.close();
  await server.close();
  rmSync(server.dataDir, { recursive: true, force: true });
}
