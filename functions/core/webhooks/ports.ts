/**
 * What webhook delivery needs from its runtime, injected so the domain stays free of sockets, DNS
 * and queue clients: a queue of delivery ids (SQS on AWS, in-process on the embedded default) and
 * a transport that resolves names and POSTs to an address already checked.
 */

/**
 * A queue message names a delivery and the attempt it is for; the Store holds everything else.
 * A message for an attempt already made (a duplicate, or one overtaken by a redelivery) is dropped.
 */
export interface DeliveryMessage {
  deliveryId: string;
  attempt: number;
}

export interface DeliveryQueue {
  send(message: DeliveryMessage, options?: { delaySeconds?: number }): Promise<void>;
}

/** The addresses a host name resolves to (A and AAAA records); throws when it resolves to none. */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface OutboundRequest {
  url: URL;
  /** The checked address to connect to: the request never resolves the name again. */
  address: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** Sends one POST without following redirects; throws on a network error or when `timeoutMs` passes. */
export type Sender = (request: OutboundRequest) => Promise<{ status: number }>;

/** Which destinations an operator lets webhooks reach (functions/core/webhooks/ssrf.ts). */
export interface DestinationPolicy {
  /** Allow plain `http:` URLs (the embedded default); otherwise `https:` only. */
  allowHttp: boolean;
  /** Allow loopback addresses and `localhost` (local tools listening on this machine). */
  allowLoopback: boolean;
  /** Allow every address range: private networks, link-local, metadata endpoints (`BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1`). */
  allowPrivate: boolean;
}

export interface WebhookDeliveryPorts {
  queue: DeliveryQueue;
  resolve: Resolver;
  send: Sender;
  policy: DestinationPolicy;
}

/**
 * For a runtime that does not deliver webhooks (API tests of other features): subscriptions and
 * deliveries are stored, nothing is sent, and host names are not resolved.
 */
export const NO_DELIVERY: WebhookDeliveryPorts = {
  queue: { send: async () => {} },
  resolve: async (hostname) => {
    throw new Error(`This runtime does not resolve host names (${hostname}).`);
  },
  send: async () => {
    throw new Error('This runtime does not deliver webhooks.');
  },
  policy: { allowHttp: false, allowLoopback: false, allowPrivate: false },
};
