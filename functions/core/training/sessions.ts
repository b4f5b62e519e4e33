import type { Clock } from '../../ports/clock.ts';
import { ignoreConditionFailed, putIf, type Store } from '../../ports/store.ts';
import type { Actor } from '../actor.ts';
import { NotFoundError } from '../errors.ts';
import { keys } from '../keys.ts';
import { createWithNewId } from './ids.ts';
import type { TrainingSession } from './model.ts';

/** Sessions group a client's runs and samplers; a client may mark one finished (Tinker's `sessions/{id}/finish`). */
export class TrainingSessions {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(actor: Actor, input: { trainingProjectId: string | null }): Promise<TrainingSession> {
    const createdAt = this.clock.now().toISOString();
    return createWithNewId(async (id) => {
      const session: TrainingSession = { id, userId: actor.userId, trainingProjectId: input.trainingProjectId, createdAt, finishedAt: null };
      const item = {
        ...keys.trainingSession(id),
        ...keys.trainingSessionIndex(actor.userId),
        gsi1sk: `${createdAt}#${id}`,
        id,
        user_id: actor.userId,
        training_project_id: input.trainingProjectId,
        created_at: createdAt,
      };
      return (await putIf(this.store, item, { exists: false })) ? session : undefined;
    });
  }

  async get(actor: Actor, sessionId: string): Promise<TrainingSession> {
    const item = await this.store.get(keys.trainingSession(sessionId));
    if (item?.user_id !== actor.userId) throw new NotFoundError(`Session '${sessionId}' not found for this API key; check the session id, or create a session.`);
    return {
      id: sessionId,
      userId: actor.userId,
      trainingProjectId: item.training_project_id as string | null,
      createdAt: item.created_at as string,
      finishedAt: (item.finished_at as string | undefined) ?? null,
    };
  }

  /** The caller's session ids, newest first. */
  async listIds(actor: Actor): Promise<string[]> {
    const { items } = await this.store.query({ pk: keys.trainingSessionIndex(actor.userId).gsi1pk, index: 'gsi1', descending: true });
    return items.map((item) => item.id as string);
  }

  /** Marks the session finished (the first time only); its runs and samplers stay as they are. */
  async finish(actor: Actor, sessionId: string): Promise<TrainingSession> {
    const session = await this.get(actor, sessionId);
    if (session.finishedAt !== null) return session;
    const finishedAt = this.clock.now().toISOString();
    await this.store.update(keys.trainingSession(sessionId), { set: { finished_at: finishedAt }, upsert: false }).catch(ignoreConditionFailed);
    return { ...session, finishedAt };
  }
}
