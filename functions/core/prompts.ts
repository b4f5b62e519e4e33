import type { Store } from '../ports/store.ts';
import { PromptSet, type Message, type PromptContent } from '../schemas/bread.ts';
import type { Actor } from './actor.ts';
import { batchCreate, type BatchResult } from './batch.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import { createImmutable, deleteUnreferenced } from './immutable.ts';
import { keys, resourceName } from './keys.ts';
import { assertValidName } from './names.ts';
import type { RepoService } from './repos.ts';
import { parseOrThrow } from './validation.ts';

export interface Prompt {
  prompt_name: string;
  messages: Message[];
  tools: Record<string, unknown>[] | null;
}

export class PromptService {
  constructor(
    private readonly store: Store,
    private readonly repos: RepoService,
  ) {}

  /** Creates a prompt; an identical repeat returns the stored one (bread-api.md §4). */
  async create(actor: Actor, repoName: string, name: string, content: PromptContent): Promise<{ created: boolean; prompt: Prompt }> {
    assertValidName(name, 'prompt');
    await this.repos.get(actor, repoName);
    const prompt: Prompt = { prompt_name: name, messages: content.messages, tools: content.tools ?? null };
    const result = await createImmutable(this.store, {
      item: { ...keys.resource(actor.userId, repoName, 'prompt', name), ...prompt },
      content: (item) => ({ messages: item.messages, tools: item.tools ?? null }),
      conflictMessage: `Prompt '${name}' already exists with different content. Prompts are immutable and cannot be changed.`,
    });
    return { created: result.created, prompt: toPrompt(result.item) };
  }

  /** Each entry's messages are validated on their own, so a bad entry lands in `failed` (bread-api.md Q16). */
  async createBatch(actor: Actor, repoName: string, prompts: Record<string, unknown[]>): Promise<BatchResult> {
    await this.repos.get(actor, repoName);
    return batchCreate(
      Object.entries(prompts),
      ([name]) => name,
      ([name, messages]) => this.create(actor, repoName, name, parseOrThrow(PromptSet, { messages })),
    );
  }

  async get(actor: Actor, repoName: string, name: string): Promise<Prompt> {
    assertValidName(name, 'prompt');
    await this.repos.get(actor, repoName);
    const item = await this.store.get(keys.resource(actor.userId, repoName, 'prompt', name));
    if (!item) throw new NotFoundError(`Prompt '${name}' not found`);
    return toPrompt(item);
  }

  async list(actor: Actor, repoName: string): Promise<string[]> {
    await this.repos.get(actor, repoName);
    const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'prompt'));
    return items.map((item) => resourceName('prompt', item.sk));
  }

  /** Legacy delete: refused while a target uses the prompt (bread-api.md Q5). */
  async delete(actor: Actor, repoName: string, name: string): Promise<void> {
    assertValidName(name, 'prompt');
    await this.repos.get(actor, repoName);
    const deleted = await deleteUnreferenced(this.store, keys.resource(actor.userId, repoName, 'prompt', name), [], async () => {
      const { items } = await this.store.query(keys.resourcePartition(actor.userId, repoName, 'target'));
      const users = items
        .filter((item) => {
          const config = item.config as { teacher_prompt?: string; student_prompt?: string };
          return config.teacher_prompt === name || config.student_prompt === name;
        })
        .map((item) => resourceName('target', item.sk));
      return new ConflictError(`Prompt '${name}' is used by targets: ${users.join(', ')}`);
    });
    if (!deleted) throw new NotFoundError(`Prompt '${name}' not found`);
  }
}

function toPrompt(item: Record<string, unknown>): Prompt {
  return {
    prompt_name: item.prompt_name as string,
    messages: item.messages as Message[],
    tools: (item.tools as Prompt['tools']) ?? null,
  };
}
