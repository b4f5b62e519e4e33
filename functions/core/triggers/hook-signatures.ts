import { createHmac, timingSafeEqual } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { InvalidInputError, UnauthorizedError } from '../errors.ts';

/** How a hook request proved it knows the trigger's secret. */
export type SignatureScheme = 'standard' | 'github';

export interface VerifiedHook {
  scheme: SignatureScheme;
  /** The sender's id for this delivery; a second request with it is a replay. */
  deliveryId: string;
  /** GitHub's ping on webhook creation: answered, never acted on. */
  ping: boolean;
}

/** Reads a request header by its lowercase name. */
export type HeaderLookup = (name: string) => string | undefined;

/** Longest delivery id accepted: ids are stored in a sort key (DynamoDB allows 1 KB). */
const MAX_DELIVERY_ID_LENGTH = 256;

const STANDARD_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;

/** Which scheme a request claims, before any secret is read; undefined when it carries no signature. */
export function claimedScheme(header: HeaderLookup): SignatureScheme | undefined {
  if (STANDARD_HEADERS.some((name) => header(name) !== undefined)) return 'standard';
  if (header('x-hub-signature-256') !== undefined) return 'github';
  return undefined;
}

export const MISSING_SIGNATURE =
  'This hook needs a signed request: send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature, or GitHub\'s X-Hub-Signature-256 and X-GitHub-Delivery.';

/**
 * Checks the request's signature over the exact bytes received, with the trigger's secret.
 *
 * Standard Webhooks: the `standardwebhooks` library verifies the signature and refuses a
 * timestamp more than 5 minutes old or ahead. GitHub: `X-Hub-Signature-256` is the hex HMAC-SHA256
 * of the body keyed with the secret string as the user pasted it into GitHub (the whole `whsec_…`
 * text, as UTF-8); GitHub signs no timestamp and not its delivery id, which therefore only guards
 * against a delivery being replayed as it was sent.
 */
export function verifyHook(secret: string, header: HeaderLookup, body: Buffer): VerifiedHook {
  const scheme = claimedScheme(header);
  if (scheme === 'standard') return verifyStandard(secret, header, body);
  if (scheme === 'github') return verifyGitHub(secret, header, body);
  throw new UnauthorizedError(MISSING_SIGNATURE);
}

function verifyStandard(secret: string, header: HeaderLookup, body: Buffer): VerifiedHook {
  const missing = STANDARD_HEADERS.filter((name) => !header(name));
  if (missing.length > 0) throw new UnauthorizedError(`The Standard Webhooks signature is incomplete: the request lacks ${missing.join(', ')}.`);
  const headers = Object.fromEntries(STANDARD_HEADERS.map((name) => [name, header(name)!]));
  try {
    new Webhook(secret).verify(body, headers, { jsonParse: false });
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    throw new UnauthorizedError(standardRefusal(error.message));
  }
  return { scheme: 'standard', deliveryId: deliveryId(headers['webhook-id']!, 'webhook-id'), ping: false };
}

/** The library's reasons, as sentences that tell the sender what to fix. */
function standardRefusal(reason: string): string {
  if (/too old|too new/.test(reason)) {
    return 'The webhook-timestamp is more than 5 minutes away from the server\'s clock; sign each request when sending it, and check the sender\'s clock.';
  }
  if (/Invalid Signature Headers/.test(reason)) return 'The webhook-timestamp must be whole seconds since the Unix epoch.';
  return SIGNATURE_MISMATCH;
}

export const SIGNATURE_MISMATCH =
  'The request\'s signature does not match: sign the exact body sent with this trigger\'s secret, and check that the trigger still exists.';

function verifyGitHub(secret: string, header: HeaderLookup, body: Buffer): VerifiedHook {
  const presented = /^sha256=([0-9a-f]{64})$/i.exec(header('x-hub-signature-256') ?? '');
  if (!presented) throw new UnauthorizedError('X-Hub-Signature-256 must be "sha256=" followed by the 64 hex digits of the HMAC-SHA256 of the body.');
  const expected = createHmac('sha256', secret).update(body).digest();
  if (!timingSafeEqual(Buffer.from(presented[1]!, 'hex'), expected)) throw new UnauthorizedError(SIGNATURE_MISMATCH);
  const delivery = header('x-github-delivery');
  if (!delivery) throw new UnauthorizedError('A GitHub-signed request must carry its X-GitHub-Delivery id, which guards against replays.');
  return { scheme: 'github', deliveryId: deliveryId(delivery, 'X-GitHub-Delivery'), ping: header('x-github-event') === 'ping' };
}

function deliveryId(id: string, name: string): string {
  if (id.length > MAX_DELIVERY_ID_LENGTH) throw new InvalidInputError(`${name} must be at most ${MAX_DELIVERY_ID_LENGTH} characters.`);
  return id;
}
