/** Admin API shapes: API key management (not part of the Bread spec). */
import { z } from 'zod';
import { nameSchema } from './names.ts';

export const ApiKeyCreate = z
  .object({
    user_id: nameSchema('user'),
    name: z.string().max(128).nullish(),
    admin: z.boolean().optional().meta({ description: 'An admin key may act for any user (X-User-Id) and manage keys' }),
  })
  .meta({ id: 'ApiKeyCreate' });

export const ApiKeyInfo = z
  .object({ key_id: z.string(), user_id: z.string(), admin: z.boolean(), name: z.string().nullable(), created_at: z.string() })
  .meta({ id: 'ApiKeyInfo' });

export const ApiKeyCreated = ApiKeyInfo.extend({
  api_key: z.string().meta({ description: 'The key itself; shown only in this response' }),
}).meta({ id: 'ApiKeyCreated' });

export const ApiKeyList = z.object({ keys: z.array(ApiKeyInfo) }).meta({ id: 'ApiKeyList' });

export const ApiKeyListQuery = z.object({ user_id: nameSchema('user') });
export const ApiKeyPath = z.object({ key_id: z.string().regex(/^key_[0-9a-f]{16}$/, 'Unknown key id format') });
