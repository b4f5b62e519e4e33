/**
 * The Node side of webhook delivery: DNS resolution for the SSRF guard, and a POST that connects
 * to the address the guard checked (the `lookup` hook answers with it), so DNS cannot change the
 * destination between the check and the connection. The URL's host still names the server, for
 * the Host header and TLS certificate checks. Redirects are never followed (node:http does not).
 */
import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIPv6 } from 'node:net';
import type { OutboundRequest, Resolver, Sender } from '#core/webhooks/ports.ts';

export const resolveWithDns: Resolver = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map(({ address }) => address);

export const sendWebhook: Sender = ({ url, address, headers, body, timeoutMs }: OutboundRequest) =>
  new Promise((resolve, reject) => {
    const family = isIPv6(address) ? 6 : 4;
    const pinned: LookupFunction = (_hostname, options, callback) => {
      if (options.all) (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address, family }]);
      else callback(null, address, family);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup: pinned }, (response) => {
      // Only the status matters: the body is never read, so an endpoint cannot hold the attempt
      // open by streaming one.
      clearTimeout(deadline);
      resolve({ status: response.statusCode ?? 0 });
      response.destroy();
    });
    // A deadline for the whole exchange, not an idle timeout that a slow endpoint could keep resetting.
    const deadline = setTimeout(() => request.destroy(new Error(`The endpoint did not answer within ${timeoutMs / 1000} s.`)), timeoutMs);
    request.on('error', (error) => {
      clearTimeout(deadline);
      reject(error.message.startsWith('The endpoint') ? error : new Error(`The endpoint could not be reached: ${error.message}`));
    });
    request.end(body);
  });
