import type { Runtime } from '#functions/composition.ts';
import type { LoopsRouteOptions } from '#http/routes/loops/options.ts';

/**
 * Where Loops traffic goes on AWS. Clients get run and sampler base URLs on the data plane, and
 * trainers get it as their relay origin too: the operations they fetch (up to 24 MiB) and the
 * results they post outgrow Lambda's 6 MB, and Batch jobs reach the load balancer's public name
 * like any client. Without a data plane, both are the origin each request arrived at.
 */
export function loopsOrigins(runtime: Pick<Runtime, 'dataPlaneUrl'>): LoopsRouteOptions {
  return runtime.dataPlaneUrl ? { dataPlaneUrl: runtime.dataPlaneUrl, relayUrl: runtime.dataPlaneUrl } : {};
}
