import { awsConfigFromEnv, composeAws, type Runtime } from '#functions/composition.ts';

/** The AWS runtime of this Lambda, composed once per cold start from its environment. */
export const runtime: Runtime = composeAws(awsConfigFromEnv(process.env));
