import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IgnoreMode } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { ContainerImage } from 'aws-cdk-lib/aws-ecs';

/** The engine images' build context: batch/, so that the contract comes along (batch/engine/Dockerfile). */
export const ENGINE_BUILD_CONTEXT = fileURLToPath(new URL('../../batch/', import.meta.url));

/**
 * Left out of every image context even if a .dockerignore forgets them: local state that is
 * large (a virtualenv is gigabytes) or changes on every test run (and would change the hash).
 */
const ALWAYS_EXCLUDED = ['engine/.venv', '**/__pycache__', '**/.pytest_cache'];

/**
 * An engine image built from batch/ with `dockerfile` (relative to it: `engine/Dockerfile` for
 * GPU jobs, `engine/Dockerfile.cpu` for stim).
 *
 * At synth, an image asset is only fingerprinted and its context copied into cdk.out; `cdk deploy`
 * builds and pushes it (so deploying needs Docker; synth does not). The context's exclusions are
 * read from the Dockerfile's own `<Dockerfile>.dockerignore`, the file `docker build` uses, so that
 * synth neither hashes nor copies what the build would leave out: the engine's local .venv alone is
 * gigabytes.
 *
 * linux/amd64 whatever machine deploys: the GPU instances and Fargate tasks are x86_64.
 */
export function engineImage(dockerfile: string): ContainerImage {
  return ContainerImage.fromAsset(ENGINE_BUILD_CONTEXT, {
    file: dockerfile,
    platform: Platform.LINUX_AMD64,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: [...new Set([...ALWAYS_EXCLUDED, ...dockerignore(`${ENGINE_BUILD_CONTEXT}${dockerfile}.dockerignore`)])],
  });
}

/** The patterns of a .dockerignore file, without comments and blank lines. */
export function dockerignore(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}
