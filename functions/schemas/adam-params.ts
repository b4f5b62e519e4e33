import { z } from 'zod';

/**
 * The Loops and Tinker SDKs' AdamParams. A raw caller's missing fields take the SDK's defaults,
 * which differ only in `grad_clip_norm` (Loops clips at 1.0, Tinker's 0 does not clip).
 */
export const adamParams = (defaultGradClipNorm: number) =>
  z.object({
    learning_rate: z.number().min(0).default(1e-4),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.95),
    eps: z.number().min(0).default(1e-12),
    weight_decay: z.number().min(0).default(0),
    grad_clip_norm: z.number().min(0).default(defaultGradClipNorm),
  });
