import type { z } from 'zod';
import { ValidationError } from './errors.ts';

/** Parses with a schema, turning the first issue into a ValidationError (422). */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new ValidationError(issue.code === 'custom' ? issue.message : `${where}${issue.message}`);
}
