/**
 * The deployment's admin API key, bootstrapped from Secrets Manager at a Lambda cold start.
 *
 * CloudFormation generates the key into a secret (lib/constructs/api-secrets.ts); the store only
 * ever holds its hash, written here through `ApiKeyService.ensure`, which is idempotent. The
 * operator reads the plaintext from the secret to make the first call.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ADMIN_USER, type ApiKeyService } from '#core/api-keys.ts';

/** The secret reader, injectable so tests make no network calls. */
export type SecretReader = (secretId: string) => Promise<string>;

export function secretsManagerReader(client: SecretsManagerClient = new SecretsManagerClient({})): SecretReader {
  return async (secretId) => {
    const { SecretString: value } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (!value) throw new Error(`Secret ${secretId} has no string value`);
    return value;
  };
}

/** Makes the admin key held in `secretId` valid for `ADMIN_USER` (idempotent across cold starts). */
export async function ensureAdminKeyFromSecret(
  apiKeys: Pick<ApiKeyService, 'ensure'>,
  secretId: string,
  readSecret: SecretReader = secretsManagerReader(),
): Promise<void> {
  const adminKey = (await readSecret(secretId)).trim();
  if (!adminKey) throw new Error(`Secret ${secretId} holds an empty admin API key`);
  await apiKeys.ensure(adminKey, ADMIN_USER, true);
}
