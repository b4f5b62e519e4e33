/**
 * Uploaded datasets (`/v1/datasets`) and what a `from_dataset` generator may read: shipped names,
 * the caller's own uploads, and URIs under a prefix the operator allows — nothing else.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DATASET_MAX_BYTES } from '#core/datasets.ts';
import type { JobSpec } from '#schemas/job-spec.ts';
import { createPrompt, createRepo, createTestApp, createUserKey, expectError, waitForJob, type RequestOptions, type TestApp } from '#test/support/app.ts';

const JSONL = '{"question": "What is 2+2?"}\n"Name a colour."\n\n{"prompt": "Why is the sky blue?"}\n';
const CSV = 'id,question\n1,"Alpha, beta?"\n2,Gamma?\n3,\n';
const ALLOWED_PREFIX = 'file:///srv/bakehouse-datasets/';

let api: TestApp;
let alice: string;
let bob: string;

beforeEach(async () => {
  api = await createTestApp({ services: { datasetUriPrefixes: [ALLOWED_PREFIX, 's3://shared-datasets/questions'] } });
  alice = await createUserKey(api.request, 'alice');
  bob = await createUserKey(api.request, 'bob');
  for (const key of [alice, bob]) {
    await createRepo(api.request, 'r1', undefined, { key });
  }
  await createPrompt(asUser(alice), 'r1', 'teacher');
  await createPrompt(asUser(alice), 'r1', 'student', []);
});
afterEach(() => api.close());

const asUser =
  (key: string) =>
  (method: string, path: string, options: RequestOptions = {}) =>
    api.request(method, path, { ...options, key });

const upload = (name: string, body: string, key = alice, contentType = 'application/x-ndjson') =>
  api.request('PUT', `/v1/datasets/${name}`, { body, key, headers: { 'content-type': contentType } });

const createTarget = (dataset: string, name = 't1', key = alice) =>
  api.request('POST', '/v1/repo/r1/targets', {
    key,
    body: {
      target_name: name,
      template: 'default',
      overrides: { teacher_prompt: 'teacher', student_prompt: 'student', generators: [{ type: 'from_dataset', dataset, numq: 2 }] },
    },
  });

describe('PUT /v1/datasets/{name}', () => {
  it('stores JSONL with 201 and its metadata, and answers an identical upload with 200', async () => {
    const created = await upload('questions', JSONL);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toEqual({ dataset_name: 'questions', format: 'jsonl', size: Buffer.byteLength(JSONL), lines: 3, created_at: expect.any(String) });
    const again = await upload('questions', JSONL);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(created.body);
  });

  it('reads text/csv as CSV, counting rows whose question is set', async () => {
    const created = await upload('table', CSV, alice, 'text/csv');
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ format: 'csv', lines: 2 });
  });

  it('refuses other content under an existing name with 409, keeping the first', async () => {
    await upload('questions', JSONL);
    expectError(await upload('questions', '"Another?"\n'), 409, 'RESOURCE_CONFLICT', /Dataset 'questions' already exists with different content/);
    expect((await api.request('GET', '/v1/datasets/questions', { key: alice })).body.lines).toBe(3);
  });

  it(`refuses a dataset over ${DATASET_MAX_BYTES} bytes with 413 in the error shape`, async () => {
    const line = `${JSON.stringify({ question: 'x'.repeat(1000) })}\n`;
    const body = line.repeat(Math.ceil(DATASET_MAX_BYTES / line.length) + 1);
    const response = await upload('big', body);
    expectError(response, 413, 'PAYLOAD_TOO_LARGE', `A dataset may be at most ${DATASET_MAX_BYTES} bytes (4 MiB); this one has ${body.length}.`);
    expectError(await api.request('GET', '/v1/datasets/big', { key: alice }), 404, 'RESOURCE_NOT_FOUND');
  });

  it('refuses other content types with 415 naming the two it takes', async () => {
    const response = await upload('questions', JSONL, alice, 'application/x-www-form-urlencoded');
    expectError(response, 415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the dataset as application/x-ndjson (JSONL) or text/csv (CSV).');
  });

  it.each([
    ['squad', "Name 'squad' is reserved for a shipped dataset; choose another name."],
    ['batch', "Name 'batch' is reserved"],
    ['a%20b', "Name contains invalid character: ' '"],
    ['a%2Fb', "Name contains invalid character: '/'"],
  ])('refuses the name %s with 422', async (name, message) => {
    expectError(await upload(name, JSONL), 422, 'VALIDATION_ERROR', message);
  });

  it.each([
    ['{"answer": 1}\n', 'application/x-ndjson', "Line 1 of the dataset has no 'question' or 'prompt' or 'text' string field."],
    ['{oops\n', 'application/x-ndjson', /^Line 1 of the dataset is not valid JSON/],
    ['id,answer\n1,2\n', 'text/csv', "The dataset's CSV header needs a 'question' or 'prompt' or 'text' column."],
    ['\n\n', 'application/x-ndjson', 'The dataset holds no questions.'],
  ])('refuses a file the engine could not sample from with 422: %j', async (body, contentType, message) => {
    expectError(await upload('bad', body, alice, contentType), 422, 'VALIDATION_ERROR', message);
  });
});

describe('GET and DELETE /v1/datasets', () => {
  it('lists, gets and deletes only the caller’s own datasets', async () => {
    await upload('questions', JSONL);
    await upload('table', CSV, alice, 'text/csv');
    await upload('mine', JSONL, bob);

    const list = await api.request('GET', '/v1/datasets', { key: alice });
    expect(list.status).toBe(200);
    expect(list.body.datasets.map((dataset: { dataset_name: string }) => dataset.dataset_name)).toEqual(['questions', 'table']);
    expect((await api.request('GET', '/v1/datasets/table', { key: alice })).body).toMatchObject({ dataset_name: 'table', lines: 2 });
    expectError(await api.request('GET', '/v1/datasets/questions', { key: bob }), 404, 'RESOURCE_NOT_FOUND', "Dataset 'questions' not found");
    expectError(await api.request('DELETE', '/v1/datasets/questions', { key: bob }), 404, 'RESOURCE_NOT_FOUND');

    const deleted = await api.request('DELETE', '/v1/datasets/questions', { key: alice });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ message: 'Dataset deleted successfully' });
    expectError(await api.request('GET', '/v1/datasets/questions', { key: alice }), 404, 'RESOURCE_NOT_FOUND');
    expect(await api.jobs.blobs.list('datasets/alice/questions/')).toEqual([]);
  });

  it('refuses to delete a dataset a target uses, naming the target, until the target is gone', async () => {
    await upload('questions', JSONL);
    expect((await createTarget('questions')).status).toBe(201);
    expectError(
      await api.request('DELETE', '/v1/datasets/questions', { key: alice }),
      409,
      'RESOURCE_CONFLICT',
      "Dataset 'questions' is used by targets: r1/t1. Delete those targets first.",
    );
    expect((await api.request('DELETE', '/v1/repo/r1/targets/t1', { key: alice })).status).toBe(200);
    expect((await api.request('DELETE', '/v1/datasets/questions', { key: alice })).status).toBe(200);
  });

  it('is documented in the OpenAPI document with its size limit', async () => {
    const doc = (await api.request('GET', '/openapi.json')).body;
    const put = doc.paths['/v1/datasets/{dataset_name}'].put;
    expect(Object.keys(put.requestBody.content)).toEqual(['application/x-ndjson', 'text/csv']);
    expect(put.description).toContain(`at most ${DATASET_MAX_BYTES} bytes`);
    expect(Object.keys(put.responses)).toEqual(expect.arrayContaining(['200', '201', '409', '413', '415', '422']));
    expect(Object.keys(doc.paths['/v1/datasets'])).toEqual(['get']);
  });
});

describe('from_dataset generators: what a target may read', () => {
  it('accepts the caller’s own upload and hands the stim job its resolved URI', async () => {
    await upload('questions', JSONL);
    const target = await createTarget('questions');
    expect(target.status, target.text).toBe(201);
    expect(target.body.config.generators).toEqual([{ type: 'from_dataset', dataset: 'questions', numq: 2 }]);

    expect((await api.request('POST', '/v1/repo/r1/targets/t1/stim', { key: alice })).status).toBe(200);
    await waitForJob(asUser(alice), '/v1/repo/r1/targets/t1/stim');
    const spec = api.jobs.compute.submitted[0]!.spec as Extract<JobSpec, { kind: 'stim' }>;
    expect(Object.keys(spec.stim.datasets ?? {})).toEqual(['questions']);
    const uri = spec.stim.datasets!.questions!;
    expect(uri).toMatch(/^file:\/\/\/.*\/datasets\/alice\/questions\/[0-9a-f]{32}\.jsonl$/);
    expect(readFileSync(fileURLToPath(uri), 'utf8')).toBe(JSONL);
  });

  it('treats another user’s dataset as unknown, in targets and by name', async () => {
    await upload('questions', JSONL);
    await createPrompt(asUser(bob), 'r1', 'teacher');
    await createPrompt(asUser(bob), 'r1', 'student', []);
    expectError(await createTarget('questions', 't1', bob), 400, 'INVALID_INPUT', /unknown dataset 'questions'/);
    const sameAsMissing = await createTarget('never_uploaded', 't1', bob);
    expect(sameAsMissing.body.message).toBe((await createTarget('questions', 't1', bob)).body.message.replace('questions', 'never_uploaded'));
  });

  it.each(['file:///etc/passwd', 'file:///etc/passwd.jsonl', 'file:///no/such/file.jsonl', 's3://someone-elses-bucket/data.jsonl', 'https://example.com/q.jsonl'])(
    'refuses %s with 422, saying which forms are allowed and nothing about the file',
    async (uri) => {
      const response = await createTarget(uri);
      expectError(
        response,
        422,
        'VALIDATION_ERROR',
        'Invalid generator 0 (from_dataset): this dataset URI is not allowed; use a shipped dataset (squad, gsm8k, mmlu, hellaswag, ' +
          'code_contests, math_problems), a dataset you uploaded with PUT /v1/datasets/{name}, or a file:// or s3:// JSONL or CSV URI ' +
          'under a prefix the operator allows.',
      );
      expect(response.body.message).not.toContain(uri.split('://')[1]);
    },
  );

  it.each([
    `${ALLOWED_PREFIX}../../etc/passwd.jsonl`,
    `${ALLOWED_PREFIX}%2e%2e/secret.jsonl`,
    `${ALLOWED_PREFIX}questions.txt`,
    `${ALLOWED_PREFIX}q.jsonl?x=1`,
    'file:///srv/bakehouse-datasets-other/q.jsonl',
    's3://shared-datasets/questionsX/q.jsonl',
  ])('refuses %s, which only seems to be under an allowed prefix', async (uri) => {
    expectError(await createTarget(uri), 422, 'VALIDATION_ERROR', /this dataset URI is not allowed/);
  });

  it('accepts URIs under an operator-allowed prefix and passes them to the engine as they are', async () => {
    const uris = [`${ALLOWED_PREFIX}team/questions.jsonl`, 's3://shared-datasets/questions/q.csv'];
    for (const [index, uri] of uris.entries()) expect((await createTarget(uri, `t${index}`)).status).toBe(201);
    expect((await api.request('POST', '/v1/repo/r1/targets/t1/stim', { key: alice })).status).toBe(200);
    await waitForJob(asUser(alice), '/v1/repo/r1/targets/t1/stim');
    const spec = api.jobs.compute.submitted[0]!.spec as Extract<JobSpec, { kind: 'stim' }>;
    expect(spec.stim.datasets).toEqual({ [uris[1]!]: uris[1] });
  });

  it('refuses a stored target whose URI is no longer allowed when its stim job starts', async () => {
    await createTarget(`${ALLOWED_PREFIX}team/questions.jsonl`);
    const narrowed = await createTestApp({ store: async () => api.store, services: { datasetUriPrefixes: [] } });
    const started = await narrowed.request('POST', '/v1/repo/r1/targets/t1/stim', { headers: { 'x-user-id': 'alice' } });
    expectError(started, 422, 'VALIDATION_ERROR', /this dataset URI is not allowed/);
    expect(narrowed.jobs.compute.submitted).toEqual([]);
  });

  it('keeps shipped names working and lists nothing for the engine to resolve', async () => {
    expect((await createTarget('gsm8k')).status).toBe(201);
    expect((await api.request('POST', '/v1/repo/r1/targets/t1/stim', { key: alice })).status).toBe(200);
    await waitForJob(asUser(alice), '/v1/repo/r1/targets/t1/stim');
    const spec = api.jobs.compute.submitted[0]!.spec as Extract<JobSpec, { kind: 'stim' }>;
    expect(spec.stim.datasets).toEqual({});
  });

  it('checks datasets a target inherits from its template', async () => {
    await upload('questions', JSONL);
    expect((await createTarget('questions', 'base')).status).toBe(201);
    const derived = await api.request('POST', '/v1/repo/r1/targets', { key: alice, body: { target_name: 'derived', template: 'base', overrides: {} } });
    expect(derived.status, derived.text).toBe(201);
    expectError(
      await api.request('DELETE', '/v1/datasets/questions', { key: alice }),
      409,
      'RESOURCE_CONFLICT',
      "Dataset 'questions' is used by targets: r1/base, r1/derived. Delete those targets first.",
    );
  });
});
