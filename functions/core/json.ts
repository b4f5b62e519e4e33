/** JSON helpers shared by resolution (templates) and comparison (immutability). */

export type JsonObject = { [key: string]: unknown };

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Drops null and undefined members of objects, recursively; arrays keep their length. The
 * recursion is safe because request bodies nest at most 31 levels (http/middleware/body.ts).
 */
export function dropNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map((entry) => dropNulls(entry)) as T;
  if (!isPlainObject(value)) return value;
  const out: JsonObject = {};
  for (const [key, member] of Object.entries(value)) {
    if (member !== null && member !== undefined) out[key] = dropNulls(member);
  }
  return out as T;
}

/**
 * Template deep-merge (bread-api.md §7): objects merge key by key; anything else, arrays
 * included, replaces the template value whole; a null or absent override keeps the template value.
 */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (override === null || override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: JsonObject = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = deepMerge(base[key], value);
  return out;
}

/** Canonical JSON: sorted keys, nulls dropped, numbers by value. Equal strings ⇔ same content. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(dropNulls(value)));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys(value[key])]),
  );
}

export function sameContent(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
