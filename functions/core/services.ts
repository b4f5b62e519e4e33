import type { Clock } from '../ports/clock.ts';
import type { Store } from '../ports/store.ts';
import { ApiKeyService } from './api-keys.ts';
import { BakeService } from './bakes.ts';
import { IdempotencyService } from './idempotency.ts';
import { ModelResolver, type ModelCatalog } from './models.ts';
import { PromptService } from './prompts.ts';
import { RecipeService } from './recipes.ts';
import { RepoService } from './repos.ts';
import { TargetService } from './targets.ts';

export interface ServiceDeps {
  store: Store;
  clock: Clock;
  catalog: ModelCatalog;
}

export type Services = ReturnType<typeof createServices>;

/** Wires the domain services over the ports; the only place they are constructed. */
export function createServices({ store, clock, catalog }: ServiceDeps) {
  const models = new ModelResolver(store, catalog);
  const repos = new RepoService(store, models, clock);
  return {
    apiKeys: new ApiKeyService(store, clock),
    idempotency: new IdempotencyService(store, clock),
    models,
    repos,
    prompts: new PromptService(store, repos),
    targets: new TargetService(store, repos, models),
    bakes: new BakeService(store, repos, models),
    recipes: new RecipeService(store, repos),
  };
}
