import { ValidationError } from './errors.ts';

/** Name rules for repos, prompts, targets and bakes (bread-api.md §1.7). */
export const NAME_MAX_LENGTH = 128;
const NAME_CHAR = /[A-Za-z0-9_.-]/;
const RESERVED = new Set(['batch']);

export type NamedKind = 'repo' | 'prompt' | 'target' | 'bake' | 'user';

/** Returns the reason a name is refused, or undefined when it is valid. */
export function nameProblem(name: string, kind: NamedKind): string | undefined {
  if (name.length === 0) return 'Name must not be empty';
  if (name.length > NAME_MAX_LENGTH) return `Name must be at most ${NAME_MAX_LENGTH} characters`;
  for (const char of name) {
    if (!NAME_CHAR.test(char)) return `Name contains invalid character: '${char}'`;
  }
  if (name === '.' || name === '..') return `Name '${name}' is not allowed`;
  if (kind !== 'repo' && kind !== 'user' && RESERVED.has(name)) return `Name '${name}' is reserved`;
  return undefined;
}

export function assertValidName(name: string, kind: NamedKind): void {
  const problem = nameProblem(name, kind);
  if (problem) throw new ValidationError(problem);
}
