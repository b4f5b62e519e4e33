/**
 * In-process HTTP throughput and latency on the SQLite store (a file, as `npm start` uses):
 * GET bake, POST prompt (new), list prompts. The baseline is GET /v1/health in the same run:
 * the same middleware chain with no authentication and no store access.
 */
import { BENCH_KEY, embeddedBenchApp } from './embedded-app.ts';
import { jsonCaller, measure, round, type Summary } from './stats.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const LISTED_PROMPTS = 100;

export async function benchHttp(): Promise<Record<string, unknown>> {
  const { app, close } = await embeddedBenchApp();
  const call = jsonCaller((path, init) => app.request(path, init), BENCH_KEY);

  await call('POST', '/v1/repo', { repo_name: 'bench', base_model: 'bakehouse/toy-instruct' });
  for (let i = 0; i < LISTED_PROMPTS; i++) {
    await call('POST', '/v1/repo/bench/prompts', { prompt_name: `listed_${i}`, messages: [{ role: 'system', content: `p${i}` }] });
  }
  await call('POST', '/v1/repo/bench/targets', {
    target_name: 't',
    template: 'default',
    overrides: { teacher_prompt: 'listed_0', student_prompt: 'listed_1', generators: [{ type: 'hardcoded', questions: ['q'] }] },
  });
  await call('POST', '/v1/repo/bench/bakes', { bake_name: 'b', template: 'default', overrides: { datasets: [{ target: 't' }] } });

  // Listing runs before the creates so it reads exactly LISTED_PROMPTS prompts.
  const scenarios: Record<string, Summary> = {
    'GET /v1/health (baseline)': await measure(REQUESTS, 200, async () => app.request('/v1/health')),
    'GET bake': await measure(REQUESTS, 200, () => call('GET', '/v1/repo/bench/bakes/b')),
    [`list prompts (${LISTED_PROMPTS})`]: await measure(REQUESTS, 200, () => call('GET', '/v1/repo/bench/prompts')),
    'POST prompt (new)': await measure(REQUESTS, 200, (i) =>
      call('POST', '/v1/repo/bench/prompts', { prompt_name: `new_${i < 0 ? `w${-i}` : i}`, messages: [{ role: 'user', content: 'hi' }] }),
    ),
  };
  await close();

  const baseline = scenarios['GET /v1/health (baseline)']!;
  return Object.fromEntries(
    Object.entries(scenarios).map(([name, summary]) => [
      name,
      { ...summary, p50VsBaseline: round(summary.p50Ms / baseline.p50Ms, 2) },
    ]),
  );
}
