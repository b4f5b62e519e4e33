import { randomInt } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Training resources are named like Loops's: 7 base62 characters (loops-api.md §1.1), 62^7 ≈ 3.5e12 of them. */
export const TRAINING_ID = /^[0-9A-Za-z]{7}$/;

export function newTrainingId(): string {
  let id = '';
  for (let i = 0; i < 7; i++) id += BASE62[randomInt(BASE62.length)];
  return id;
}

/**
 * Creates a resource under a fresh id: `create` writes it conditionally and answers false when
 * the id is taken, which at this id space means a collision worth one more draw.
 */
export async function createWithNewId<T>(create: (id: string) => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const created = await create(newTrainingId());
    if (created !== undefined) return created;
  }
  throw new Error('No free training id after 5 draws');
}
