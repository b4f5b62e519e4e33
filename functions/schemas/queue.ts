/** Queue message bodies: a job message carries only the job id (the Store holds the job). */
import { z } from 'zod';

export const JobMessageBody = z.object({ jobId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) }).meta({ id: 'JobMessage' });
