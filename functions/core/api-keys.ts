import { createHash, randomBytes } from 'node:crypto';
import { TransactionFailedError, type Item, type Store } from '../ports/store.ts';
import type { Clock } from '../ports/clock.ts';
import type { Actor } from './actor.ts';
import { ForbiddenError, NotFoundError, UnauthorizedError } from './errors.ts';
import { keys } from './keys.ts';
import { assertValidName } from './names.ts';

/** The user an admin key belongs to when it acts for nobody else. */
export const ADMIN_USER = 'admin';

export interface ApiKeyInfo {
  key_id: string;
  user_id: string;
  admin: boolean;
  name: string | null;
  created_at: string;
}

/** Keys are stored only as their SHA-256; the plaintext is shown once, at creation. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex');
}

export class ApiKeyService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(input: { user_id: string; name?: string | null; admin?: boolean }): Promise<ApiKeyInfo & { api_key: string }> {
    assertValidName(input.user_id, 'user');
    const apiKey = `bh_${randomBytes(24).toString('base64url')}`;
    const info = await this.register(apiKey, input.user_id, input.admin ?? false, input.name ?? null);
    return { ...info, api_key: apiKey };
  }

  /**
   * Makes a known plaintext key valid (the deployment's configured admin key); idempotent, also
   * when several processes start at once: the loser of the race finds the winner's record.
   */
  async ensure(apiKey: string, userId: string, admin: boolean): Promise<ApiKeyInfo> {
    const key = keys.apiKeyByHash(hashApiKey(apiKey));
    const existing = await this.store.get(key);
    if (existing) return toInfo(existing);
    try {
      return await this.register(apiKey, userId, admin, admin ? 'admin' : null);
    } catch (error) {
      const winner = error instanceof TransactionFailedError ? await this.store.get(key) : undefined;
      if (!winner) throw error;
      return toInfo(winner);
    }
  }

  async list(userId: string): Promise<ApiKeyInfo[]> {
    const { items } = await this.store.query({ pk: keys.apiKeyIndex(userId).gsi1pk, index: 'gsi1' });
    return items.map(toInfo);
  }

  async revoke(keyId: string): Promise<void> {
    const record = await this.store.get(keys.apiKeyById(keyId));
    if (!record) throw new NotFoundError(`API key '${keyId}' not found`);
    await this.store.transact([
      { kind: 'delete', key: keys.apiKeyById(keyId) },
      { kind: 'delete', key: keys.apiKeyByHash(record.hash as string) },
    ]);
  }

  /**
   * Resolves the presented key and the user override (bread-api.md §1.2): an admin key may act
   * for any user; any other key only for itself.
   */
  async authenticate(apiKey: string | undefined, overrideUserId: string | undefined): Promise<Actor> {
    if (!apiKey) throw new UnauthorizedError();
    const record = await this.store.get(keys.apiKeyByHash(hashApiKey(apiKey)));
    if (!record) throw new UnauthorizedError();
    const info = toInfo(record);
    if (overrideUserId === undefined || overrideUserId === info.user_id) return { userId: info.user_id, isAdmin: info.admin };
    if (!info.admin) throw new ForbiddenError('User override requires a master API key');
    assertValidName(overrideUserId, 'user');
    return { userId: overrideUserId, isAdmin: true };
  }

  private async register(apiKey: string, userId: string, admin: boolean, name: string | null): Promise<ApiKeyInfo> {
    const hash = hashApiKey(apiKey);
    const info: ApiKeyInfo = {
      key_id: `key_${hash.slice(0, 16)}`,
      user_id: userId,
      admin,
      name,
      created_at: this.clock.now().toISOString(),
    };
    await this.store.transact([
      { kind: 'put', item: { ...keys.apiKeyByHash(hash), ...info }, condition: { exists: false } },
      {
        kind: 'put',
        item: { ...keys.apiKeyById(info.key_id), ...keys.apiKeyIndex(userId), gsi1sk: info.key_id, ...info, hash },
        condition: { exists: false },
      },
    ]);
    return info;
  }
}

function toInfo(item: Item): ApiKeyInfo {
  return {
    key_id: item.key_id as string,
    user_id: item.user_id as string,
    admin: item.admin === true,
    name: (item.name as string | null) ?? null,
    created_at: item.created_at as string,
  };
}
