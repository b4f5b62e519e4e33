/**
 * The JobQueue port: messages carry only a job id (the Store holds the job). Consumption belongs
 * to the platform: an SQS event source on AWS, an in-process loop on the embedded default.
 */
export interface JobMessage {
  jobId: number;
}

export interface JobQueue {
  send(message: JobMessage, options?: { delaySeconds?: number }): Promise<void>;
}
