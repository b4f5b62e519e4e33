/**
 * Name rules for repos, prompts, targets, bakes and users (bread-api.md §1.7), next to the schemas
 * that state them in the OpenAPI document; the domain checks names with the same rule
 * (functions/core/names.ts).
 */
import { z } from 'zod';

export const NAME_MAX_LENGTH = 128;
const NAME_CHARACTERS = 'A-Za-z0-9_.-';
/** The characters a name may use, as the OpenAPI document states them. */
export const NAME_PATTERN = new RegExp(`^[${NAME_CHARACTERS}]+$`);
const INVALID_CHARACTER = new RegExp(`[^${NAME_CHARACTERS}]`, 'u');
const RESERVED = new Set(['batch']);

export type NamedKind = 'repo' | 'prompt' | 'target' | 'bake' | 'user';

/** Returns the reason a name is refused, or undefined when it is valid. */
export function nameProblem(name: string, kind: NamedKind): string | undefined {
  if (name.length === 0) return 'Name must not be empty';
  if (name.length > NAME_MAX_LENGTH) return `Name must be at most ${NAME_MAX_LENGTH} characters`;
  const invalid = INVALID_CHARACTER.exec(name);
  if (invalid) return `Name contains invalid character: '${invalid[0]}'`;
  if (name === '.' || name === '..') return `Name '${name}' is not allowed`;
  if (kind !== 'repo' && kind !== 'user' && RESERVED.has(name)) return `Name '${name}' is reserved`;
  return undefined;
}

/**
 * A name field or path parameter. The check is `nameProblem`, so a refusal carries the spec's
 * sentence; the pattern and length limits are stated for clients that validate before sending.
 */
export const nameSchema = (kind: NamedKind) =>
  z
    .string()
    .superRefine((name, ctx) => {
      const problem = nameProblem(name, kind);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .meta({
      pattern: NAME_PATTERN.source,
      minLength: 1,
      maxLength: NAME_MAX_LENGTH,
      description:
        kind === 'repo' || kind === 'user'
          ? `A ${kind} name: letters, digits, '_', '.' and '-', not '.' or '..'`
          : `A ${kind} name: letters, digits, '_', '.' and '-', not '.', '..' or 'batch'`,
    });
