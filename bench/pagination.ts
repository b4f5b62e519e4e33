/**
 * Output pagination reads only the requested lines (output.idx gives byte offsets): a page at
 * offset 190,000 of a 200,000-line rollout output should cost about what a page at offset 0
 * does. Same run, same file; the ratio is the figure.
 */
import { ADMIN_USER } from '#core/api-keys.ts';
import { createServices } from '#core/services.ts';
import { createApp } from '#http/app.ts';
import { systemClock } from '#ports/clock.ts';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { createTestJobPorts } from '#test/support/test-engine.ts';
import { jsonCaller, measure, round } from './stats.ts';

const LINES = 200_000;
const KEY = 'bench-admin-key';
const PAGES = Number(process.env.BENCH_PAGES ?? 300);

export async function benchPagination(): Promise<Record<string, unknown>> {
  const store = new SqliteStore(':memory:');
  const jobs = createTestJobPorts();
  const services = createServices({ store, ...jobs, clock: systemClock, catalog: { baseModels: ['bakehouse/toy-instruct'], defaultBaseModel: 'bakehouse/toy-instruct' } });
  jobs.compute.onEvent = (event) => services.pipeline.applyEvent(event);
  jobs.queue.consume(({ jobId }) => services.pipeline.dispatch(jobId));
  await services.apiKeys.ensure(KEY, ADMIN_USER, true);
  const app = createApp(services);
  const call = jsonCaller((path, init) => app.request(path, init), KEY);

  // A rollout-sized line: the stimulus contexts and a response of a few hundred characters.
  const line = (id: number) => ({
    stimulus_id: id,
    trajectory_id: 0,
    stimulus: `Question number ${id}?`,
    unconditioned_stimulus: { messages: [{ role: 'system', content: 'Answer in uppercase.' }, { role: 'user', content: `Question number ${id}?` }] },
    conditioned_stimulus: { messages: [{ role: 'user', content: `Question number ${id}?` }] },
    response: 'AN ANSWER THAT IS LONG ENOUGH TO LOOK LIKE A REAL ONE, '.repeat(4),
    finish_reason: 'stop',
    model: 'bakehouse/toy-instruct',
    temperature: 1,
    tokens: 60,
  });
  jobs.compute.script = () => ({ lines: Array.from({ length: LINES }, (_, id) => line(id)) });

  await call('POST', '/v1/repo', { repo_name: 'bench', base_model: 'bakehouse/toy-instruct' });
  await call('POST', '/v1/repo/bench/prompts', { prompt_name: 't', messages: [{ role: 'system', content: 'x' }] });
  await call('POST', '/v1/repo/bench/prompts', { prompt_name: 's', messages: [] });
  await call('POST', '/v1/repo/bench/targets', {
    target_name: 'big',
    template: 'default',
    overrides: { teacher_prompt: 't', student_prompt: 's', generators: [{ type: 'hardcoded', questions: ['q'] }] },
  });
  await call('POST', '/v1/repo/bench/targets/big/stim');
  for (;;) {
    const status = await call('GET', '/v1/repo/bench/targets/big/stim');
    if (status.status === 'complete') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const page = (offset: number) => async () => {
    const body = await call('GET', `/v1/repo/bench/targets/big/stim/output?offset=${offset}&limit=100`);
    const first = (body.output as { stimulus_id: number }[])[0];
    if (first?.stimulus_id !== offset) throw new Error(`page at ${offset} started at ${first?.stimulus_id}`);
  };
  const atStart = await measure(PAGES, 20, page(0));
  const nearEnd = await measure(PAGES, 20, page(190_000));
  await jobs.close();
  await store.close();
  return {
    lines: LINES,
    pageLimit: 100,
    'offset 0': atStart,
    'offset 190000': nearEnd,
    p50RatioNearEndVsStart: round(nearEnd.p50Ms / atStart.p50Ms, 2),
  };
}
