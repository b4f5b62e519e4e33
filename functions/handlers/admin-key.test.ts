import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '#adapters/embedded/sqlite-store.ts';
import { ADMIN_USER, ApiKeyService } from '#core/api-keys.ts';
import { ensureAdminKeyFromSecret, secretsManagerReader } from './admin-key.ts';

const clock = { now: () => new Date('2025-01-01T00:00:00Z') };
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:bakehouse-admin-AbCdEf';

describe('ensureAdminKeyFromSecret', () => {
  let store: SqliteStore;
  afterEach(() => store.close());

  it('registers the key held in the secret as the admin key', async () => {
    store = new SqliteStore(':memory:');
    const apiKeys = new ApiKeyService(store, clock);
    const read: string[] = [];
    await ensureAdminKeyFromSecret(apiKeys, SECRET_ARN, async (id) => {
      read.push(id);
      return 'AdminKeyFromSecret123\n';
    });

    expect(read).toEqual([SECRET_ARN]);
    expect(await apiKeys.authenticate('AdminKeyFromSecret123', undefined)).toEqual({ userId: ADMIN_USER, isAdmin: true });
  });

  it('survives cold starts racing to register the same key, and later cold starts', async () => {
    store = new SqliteStore(':memory:');
    const apiKeys = new ApiKeyService(store, clock);
    const read = async () => 'RacingAdminKey456';
    await Promise.all([1, 2, 3].map(() => ensureAdminKeyFromSecret(apiKeys, SECRET_ARN, read)));
    await ensureAdminKeyFromSecret(apiKeys, SECRET_ARN, read);

    expect(await apiKeys.list(ADMIN_USER)).toHaveLength(1);
  });

  it('refuses an empty key', async () => {
    store = new SqliteStore(':memory:');
    await expect(ensureAdminKeyFromSecret(new ApiKeyService(store, clock), SECRET_ARN, async () => '  ')).rejects.toThrow(
      /empty admin API key/,
    );
  });
});

describe('secretsManagerReader', () => {
  it('asks Secrets Manager for the secret string', async () => {
    const sent: unknown[] = [];
    const client = {
      send: async (command: { input: unknown }) => {
        sent.push(command.input);
        return { SecretString: 'abc' };
      },
    } as unknown as SecretsManagerClient;

    expect(await secretsManagerReader(client)(SECRET_ARN)).toBe('abc');
    expect(sent).toEqual([{ SecretId: SECRET_ARN }]);
  });

  it('fails on a binary-only secret', async () => {
    const client = { send: async () => ({ SecretBinary: new Uint8Array([1]) }) } as unknown as SecretsManagerClient;
    await expect(secretsManagerReader(client)(SECRET_ARN)).rejects.toThrow(/has no string value/);
  });
});
