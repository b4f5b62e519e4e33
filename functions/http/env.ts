import type { Actor } from '#core/actor.ts';

/** Per-request values the middleware sets for handlers. */
export interface AppEnv {
  Variables: {
    actor: Actor;
    /** SHA-256 of the presented API key: who is asking, for idempotency records. */
    keyHash: string;
    /** The `x-request-id` the response carries and the access log names (middleware/access-log.ts). */
    requestId: string;
    /** The body's bytes exactly as received (middleware/body.ts), for signatures computed over them; unset without a body. */
    rawBody?: Buffer;
  };
}
