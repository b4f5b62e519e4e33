import { Logger } from '@aws-lambda-powertools/logger';
import type { Context as LambdaContext } from 'aws-lambda';
import type { AccessLogSink } from '#http/middleware/access-log.ts';

/**
 * The API functions' access log: one Powertools JSON line per request, carrying the Lambda
 * invocation (`function_request_id`, `cold_start`, …) beside the request's own `request_id`.
 */
export function lambdaAccessLog(logger = new Logger({ serviceName: 'bakehouse-api' })): AccessLogSink {
  return (entry, c) => {
    // Hono's Lambda adapters pass the invocation as `lambdaContext` (buffered) or `context` (streaming).
    const env = c.env as { lambdaContext?: LambdaContext; context?: LambdaContext } | undefined;
    const invocation = env?.lambdaContext ?? env?.context;
    if (invocation) logger.addContext(invocation);
    logger.info('request', { ...entry });
  };
}
