/**
 * The web console ships inside the API Lambda's bundle (lib/constructs/api.ts): the built files
 * land in `console/` beside index.mjs, where functions/handlers/api.ts serves them from.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Api } from '../../lib/constructs/api.ts';
import { cdkApp } from './support.ts';

const BUILT = join(import.meta.dirname, '..', '..', 'functions', 'console', 'dist');

/** What the stack sets on the API function; importing the bundle calls none of these. */
const LAMBDA_ENV = {
  AWS_REGION: 'eu-west-1',
  TABLE_NAME: 'items',
  ARTIFACT_BUCKET: 'artifacts',
  JOB_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/jobs',
  WEBHOOK_DELIVERY_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/deliveries',
  BATCH_GPU_QUEUE: 'gpu',
  BATCH_CPU_QUEUE: 'cpu',
  BATCH_GPU_JOB_DEFINITION: 'engine-gpu',
  BATCH_CPU_JOB_DEFINITION: 'engine-cpu',
};

/** Invokes the bundled buffered handler, in its own process, with a Function URL GET. */
function invokeBundle(bundle: string, path: string): { statusCode: number; headers: Record<string, string>; body: string } {
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { accept: 'text/html', host: 'abc.lambda-url.eu-west-1.on.aws' },
    requestContext: { http: { method: 'GET', path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'browser' }, requestId: 'r1', stage: '$default' },
    isBase64Encoded: false,
  };
  const script = `const { handler } = await import(${JSON.stringify(join(bundle, 'index.mjs'))}); console.log(JSON.stringify(await handler(${JSON.stringify(event)}, {})));`;
  try {
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...LAMBDA_ENV }, encoding: 'utf8', stdio: 'pipe' });
    return JSON.parse(output.trim().split('\n').at(-1)!);
  } catch (error) {
    // The minified bundle's source lines would drown the error itself.
    const stderr = String((error as { stderr?: string }).stderr ?? error);
    throw new Error(`The bundled handler failed: ${stderr.split('\n').filter((line) => line.length < 400).join('\n')}`, { cause: error });
  }
}

describe('the API construct', { timeout: 120_000 }, () => {
  it('bundles the built console beside the handler, buffered and streaming alike', () => {
    if (!existsSync(join(BUILT, 'index.html'))) throw new Error('functions/console/dist is missing: run `npm run build:console` (npm test does).');
    const app = cdkApp();
    const stack = new Stack(app, 'ConsoleBundle', { env: { account: '123456789012', region: 'eu-west-1' } });
    new Api(stack, 'Api', { environment: {} });
    new Api(stack, 'Chat', { environment: {}, streaming: true });
    const assembly = app.synth();
    onTestFinished(() => rmSync(assembly.directory, { recursive: true, force: true }));

    const assets = readdirSync(assembly.directory).filter((name) => name.startsWith('asset.'));
    const bundles = assets.map((name) => join(assembly.directory, name)).filter((dir) => existsSync(join(dir, 'index.mjs')));
    expect(bundles).toHaveLength(2);
    const page = readFileSync(join(BUILT, 'index.html'), 'utf8');
    const script = page.match(/src="\/console\/(assets\/[^"]+\.js)"/)![1]!;
    for (const bundle of bundles) {
      expect(readFileSync(join(bundle, 'console', 'index.html'), 'utf8')).toBe(page);
      expect(existsSync(join(bundle, 'console', script)), `${bundle} has ${script}`).toBe(true);
    }

    // The deployed handler finds them: the page, and its script as an immutable asset. (The
    // buffered bundle is the one without the streaming wrapper; browsers reach it.)
    const buffered = bundles.filter((dir) => !readFileSync(join(dir, 'index.mjs'), 'utf8').includes('streamifyResponse'));
    expect(buffered).toHaveLength(1);
    const served = invokeBundle(buffered[0]!, '/console/');
    expect(served.statusCode).toBe(200);
    expect(served.body).toBe(page);
    const asset = invokeBundle(buffered[0]!, `/console/${script}`);
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });
});
