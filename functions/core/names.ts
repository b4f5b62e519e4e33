import { nameProblem, type NamedKind } from '../schemas/names.ts';
import { ValidationError } from './errors.ts';

/** The domain's name check; the rule itself lives with the schemas that document it. */
export { nameProblem, type NamedKind };

export function assertValidName(name: string, kind: NamedKind): void {
  const problem = nameProblem(name, kind);
  if (problem) throw new ValidationError(problem);
}
