/**
 * The SSRF guard: a webhook may only reach the public internet unless the operator allows more.
 * Checked when a webhook is registered or changed, and again before every attempt (DNS answers
 * change), and the attempt connects to the address checked here, so a name cannot be re-pointed
 * at an internal address between the check and the connection.
 */
import ipaddr from 'ipaddr.js';
import { ValidationError } from '../errors.ts';
import type { DestinationPolicy, Resolver } from './ports.ts';

/** Names of cloud metadata services, refused whatever they resolve to. */
const METADATA_HOSTS = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

export interface CheckedDestination {
  url: URL;
  /** The address the request connects to. */
  address: string;
}

/** A webhook URL that may not be used, with the reason as a sentence. */
export class UnsafeDestinationError extends ValidationError {}

export async function checkDestination(rawUrl: string, policy: DestinationPolicy, resolve: Resolver): Promise<CheckedDestination> {
  const url = parseUrl(rawUrl);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new UnsafeDestinationError(
      policy.allowHttp ? `Webhook URL '${rawUrl}' must use http or https.` : `Webhook URL '${rawUrl}' must use https: this deployment refuses plain http.`,
    );
  }
  if (url.username || url.password) throw new UnsafeDestinationError('A webhook URL may not carry a user name or password; put credentials in the path or query instead.');
  const hostname = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTS.has(hostname) && !policy.allowPrivate) {
    throw new UnsafeDestinationError(`Webhook URL host '${hostname}' is a cloud metadata service, which webhooks may not reach.`);
  }
  const addresses = ipaddr.isValid(hostname) ? [hostname] : await resolveName(hostname, resolve);
  for (const address of addresses) refuseInternal(hostname, address, policy);
  return { url, address: addresses[0]! };
}

function parseUrl(rawUrl: string): URL {
  try {
    return new URL(rawUrl);
  } catch {
    throw new UnsafeDestinationError(`Webhook URL '${rawUrl}' is not a valid absolute URL.`);
  }
}

async function resolveName(hostname: string, resolve: Resolver): Promise<string[]> {
  // `localhost` and its subdomains are loopback whatever a resolver says (RFC 6761).
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return ['127.0.0.1'];
  let addresses: string[];
  try {
    addresses = await resolve(hostname);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) throw new UnsafeDestinationError(`Webhook URL host '${hostname}' does not resolve to any address; check the name.`);
  return addresses;
}

/** Every address a name resolves to must be allowed: the connection could use any of them. */
function refuseInternal(hostname: string, address: string, policy: DestinationPolicy): void {
  if (policy.allowPrivate) return;
  // An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
  const range = ipaddr.process(address).range();
  if (range === 'unicast') return;
  if (range === 'loopback' && policy.allowLoopback) return;
  const subject = hostname === address ? `${address} is` : `'${hostname}' resolves to ${address},`;
  throw new UnsafeDestinationError(
    `Webhook URL host ${subject} a ${describe(range)} address; webhooks may only reach public addresses ` +
      '(an operator can allow internal ones with BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE=1).',
  );
}

const RANGE_NAMES: Record<string, string> = {
  private: 'private-network',
  carrierGradeNat: 'carrier-grade NAT',
  loopback: 'loopback',
  linkLocal: 'link-local',
  uniqueLocal: 'unique-local',
  unspecified: 'unspecified',
  multicast: 'multicast',
  broadcast: 'broadcast',
};

function describe(range: string): string {
  return RANGE_NAMES[range] ?? `reserved (${range})`;
}
