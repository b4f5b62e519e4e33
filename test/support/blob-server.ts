/**
 * LocalBlobs behind the blob route on a real loopback HTTP server, the way the embedded runtime
 * serves presigned URLs: a small app with only that route and the app's error handling.
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { LocalBlobs } from '#adapters/embedded/local-blobs.ts';
import { handleError, notFound } from '#http/errors.ts';
import { createRouter } from '#http/openapi.ts';
import { blobRoutes } from '#http/routes/blobs.ts';
import type { Clock } from '#ports/clock.ts';

export const TEST_SIGNING_KEY = 'test-signing-key-0123456789abcdef';

export interface BlobServer {
  blobs: LocalBlobs;
  baseUrl: string;
  app: ReturnType<typeof createRouter>;
  close(): Promise<void>;
}

export async function startBlobServer(root: string, options: { clock?: Clock; signingKey?: string } = {}): Promise<BlobServer> {
  const signingKey = options.signingKey ?? TEST_SIGNING_KEY;
  const app = createRouter();
  app.onError(handleError);
  app.notFound(notFound);
  const server = await new Promise<ReturnType<typeof serve>>((ready) => {
    const started = serve({ fetch: (request) => app.fetch(request), port: 0, hostname: '127.0.0.1' }, () => ready(started));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const blobs = new LocalBlobs({ root, baseUrl, signingKey, clock: options.clock });
  blobRoutes(app, { blobs, signingKey, clock: options.clock });
  return {
    blobs,
    baseUrl,
    app,
    close: () => new Promise<void>((done, fail) => server.close((error) => (error ? fail(error) : done()))),
  };
}
