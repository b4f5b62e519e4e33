import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { z } from 'zod';
import type { Actor } from '#core/actor.ts';
import type { BatchResult } from '#core/batch.ts';
import {
  BakeConfig,
  BakeCreate,
  BakeList,
  BakeResponse,
  BatchBakeCreate,
  BatchResponse,
  BatchTargetCreate,
  DeleteResponse,
  TargetConfig,
  TargetCreate,
  TargetList,
  TargetResponse,
} from '#schemas/bread.ts';
import type { Services } from '#core/services.ts';
import type { BakeDefinition, TargetDefinition } from '#schemas/bread.ts';
import type { AppEnv } from '../env.ts';
import { BakePath, bearer, body, errors, json, RepoPath, TargetPath, type App } from '../openapi.ts';

/**
 * Targets and bakes are both templated definitions with the same route set (bread-api.md §2):
 * list, create, batch create, deprecated PUT, get and delete.
 */
interface DefinitionService {
  list(actor: Actor, repo: string): Promise<string[]>;
  create(actor: Actor, repo: string, name: string, definition: never): Promise<{ created: boolean; shown: object }>;
  createBatch(actor: Actor, repo: string, entries: { [name: string]: unknown }[]): Promise<BatchResult>;
  get(actor: Actor, repo: string, name: string): Promise<object>;
  delete(actor: Actor, repo: string, name: string): Promise<void>;
}

interface DefinitionRoutes {
  tag: string;
  plural: 'targets' | 'bakes';
  nameField: 'target_name' | 'bake_name';
  path: z.ZodObject;
  create: z.ZodType;
  set: z.ZodType;
  batch: z.ZodType;
  list: z.ZodType;
  shown: z.ZodType;
  singular: 'target' | 'bake';
  deleteNote: string;
  service: DefinitionService;
}

const valid = <T>(c: Context<AppEnv>, target: 'param' | 'json') => (c.req.valid as (target: string) => T)(target);

function definitionRoutes(app: App, spec: DefinitionRoutes): void {
  const base = `/v1/repo/{repo_name}/${spec.plural}`;
  const singular = spec.singular;
  const tags = [spec.tag];
  type Params = { repo_name: string } & Record<string, string>;
  const route = app.openapi.bind(app) as (route: ReturnType<typeof createRoute>, handler: (c: Context<AppEnv>) => Promise<Response>) => void;

  route(
    createRoute({
      method: 'get',
      path: base,
      tags,
      security: bearer,
      summary: `List ${singular} names`,
      request: { params: RepoPath },
      responses: { 200: json(spec.list, 'Names, ascending'), ...errors(404, 422) },
    }),
    async (c) => c.json({ [spec.plural]: await spec.service.list(c.get('actor'), valid<Params>(c, 'param').repo_name) }, 200),
  );

  route(
    createRoute({
      method: 'post',
      path: base,
      tags,
      security: bearer,
      summary: `Create a ${singular} (immutable)`,
      description: `\`template\` is \`default\` or an existing ${singular}, deep-merged with \`overrides\`.`,
      request: { params: RepoPath, body: body(spec.create) },
      responses: { 201: json(spec.shown, 'Created'), 200: json(spec.shown, `An identical ${singular} already existed`), ...errors(400, 404, 409, 422) },
    }),
    async (c) => {
      const { [spec.nameField]: name, ...definition } = valid<Record<string, unknown>>(c, 'json');
      const { created, shown } = await spec.service.create(c.get('actor'), valid<Params>(c, 'param').repo_name, name as string, definition as never);
      return c.json(shown, created ? 201 : 200);
    },
  );

  // The literal `batch` segment is registered before `{name}`: `POST …/bakes/batch` is a batch
  // create, never a run of a bake named "batch".
  for (const method of ['post', 'put'] as const) {
    route(
      createRoute({
        method,
        path: `${base}/batch`,
        tags,
        security: bearer,
        summary: `Create ${spec.plural} in a batch${method === 'put' ? ' (deprecated)' : ''}`,
        deprecated: method === 'put',
        description: 'Entries run in order, so a later entry may use an earlier one as its template.',
        request: { params: RepoPath, body: body(spec.batch) },
        responses: { 200: json(BatchResponse, 'Per-entry outcome'), ...errors(404, 422) },
      }),
      async (c) => {
        const entries = valid<Record<string, { [name: string]: unknown }[]>>(c, 'json')[spec.plural]!;
        return c.json(await spec.service.createBatch(c.get('actor'), valid<Params>(c, 'param').repo_name, entries), 200);
      },
    );
  }

  route(
    createRoute({
      method: 'get',
      path: `${base}/{${spec.nameField}}`,
      tags,
      security: bearer,
      summary: `Get a ${singular}`,
      request: { params: spec.path },
      responses: { 200: json(spec.shown, `The ${singular} with its resolved config`), ...errors(404, 422) },
    }),
    async (c) => {
      const params = valid<Params>(c, 'param');
      return c.json(await spec.service.get(c.get('actor'), params.repo_name, params[spec.nameField]!), 200);
    },
  );

  route(
    createRoute({
      method: 'put',
      path: `${base}/{${spec.nameField}}`,
      tags,
      security: bearer,
      summary: `Create or return a ${singular} (deprecated)`,
      deprecated: true,
      request: { params: spec.path, body: body(spec.set) },
      responses: { 200: json(spec.shown, 'Created or identical'), ...errors(400, 404, 409, 422) },
    }),
    async (c) => {
      const params = valid<Params>(c, 'param');
      const { shown } = await spec.service.create(c.get('actor'), params.repo_name, params[spec.nameField]!, valid<never>(c, 'json'));
      return c.json(shown, 200);
    },
  );

  route(
    createRoute({
      method: 'delete',
      path: `${base}/{${spec.nameField}}`,
      tags,
      security: bearer,
      summary: `Delete a ${singular}`,
      description: spec.deleteNote,
      request: { params: spec.path },
      responses: { 200: json(DeleteResponse, 'Deleted'), ...errors(404, 409, 422) },
    }),
    async (c) => {
      const params = valid<Params>(c, 'param');
      await spec.service.delete(c.get('actor'), params.repo_name, params[spec.nameField]!);
      return c.json({ message: 'Resource deleted successfully' }, 200);
    },
  );
}

export function targetRoutes(app: App, { targets, targetJobs }: Services): void {
  definitionRoutes(app, {
    tag: 'Targets',
    plural: 'targets',
    nameField: 'target_name',
    path: TargetPath,
    create: TargetCreate,
    set: TargetConfig,
    batch: BatchTargetCreate,
    list: TargetList,
    shown: TargetResponse,
    singular: 'target',
    deleteNote: 'Refused with 409 while a bake uses the target; stops and removes its stim and rollout jobs.',
    service: {
      list: (actor, repo) => targets.list(actor, repo),
      create: async (actor, repo, name, definition: TargetDefinition) => {
        const { created, target } = await targets.create(actor, repo, name, definition);
        return { created, shown: target };
      },
      createBatch: (actor, repo, entries) => targets.createBatch(actor, repo, entries as { target_name: string }[]),
      get: (actor, repo, name) => targets.get(actor, repo, name),
      delete: (actor, repo, name) => targetJobs.deleteTarget(actor, repo, name),
    },
  });
}

export function bakeRoutes(app: App, { bakes, bakeJobs }: Services): void {
  definitionRoutes(app, {
    tag: 'Bakes',
    plural: 'bakes',
    nameField: 'bake_name',
    path: BakePath,
    create: BakeCreate,
    set: BakeConfig,
    batch: BatchBakeCreate,
    list: BakeList,
    shown: BakeResponse,
    singular: 'bake',
    deleteNote: 'Refused with 409 while another bake builds on this one; stops and removes its training job.',
    service: {
      list: (actor, repo) => bakes.list(actor, repo),
      create: async (actor, repo, name, definition: BakeDefinition) => {
        const { created, item } = await bakes.create(actor, repo, name, definition);
        return { created, shown: await bakeJobs.viewItem(actor, repo, item) };
      },
      createBatch: (actor, repo, entries) => bakes.createBatch(actor, repo, entries as { bake_name: string }[]),
      get: (actor, repo, name) => bakeJobs.get(actor, repo, name),
      delete: (actor, repo, name) => bakeJobs.delete(actor, repo, name),
    },
  });
}
