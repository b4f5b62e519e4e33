import { RemovalPolicy, SecretValue } from 'aws-cdk-lib';
import { Secret as BatchSecret } from 'aws-cdk-lib/aws-batch';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface EngineSecretsProps {
  /** Default: RETAIN, so that deleting the stack does not lose keys an operator pasted in. */
  readonly removalPolicy?: RemovalPolicy;
}

/** The engine environment variables each secret holds, one JSON field per variable. */
const LLM_FIELDS = ['ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'OPENAI_BASE_URL'] as const;
const HUB_FIELDS = ['HF_TOKEN'] as const;

/**
 * Third-party credentials the engine reads from its environment (batch/engine/README.md):
 * the question LLM's key for stim jobs (Anthropic, or any OpenAI-compatible endpoint), and a
 * Hugging Face Hub token for gated base models.
 *
 * Each secret is created holding every field, empty: Batch injects a field as a container
 * variable, and a job whose secret lacks a field it names fails to start. An empty value reads
 * as unset to the engine. The operator fills the fields in with `put-secret-value`; CloudFormation
 * leaves them alone afterwards because the template's placeholder never changes.
 */
export class EngineSecrets extends Construct {
  readonly llmApiKeys: Secret;
  readonly hubToken: Secret;

  constructor(scope: Construct, id: string, props: EngineSecretsProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.llmApiKeys = new Secret(this, 'LlmApiKeys', {
      description: `Bakehouse engine: question LLM credentials for stim jobs (JSON fields ${LLM_FIELDS.join(', ')})`,
      secretObjectValue: emptyFields(LLM_FIELDS),
      removalPolicy,
    });
    this.hubToken = new Secret(this, 'HubToken', {
      description: `Bakehouse engine: Hugging Face Hub token for gated base models (JSON field ${HUB_FIELDS.join(', ')})`,
      secretObjectValue: emptyFields(HUB_FIELDS),
      removalPolicy,
    });
    NagSuppressions.addResourceSuppressions([this.llmApiKeys, this.hubToken], [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'These hold keys issued by third parties (LLM providers, the Hugging Face Hub), which only those ' +
          'providers can rotate; the operator pastes a new key in, and the next job picks it up.',
      },
    ]);
  }

  /** Container secrets for stim jobs: the question LLM's credentials. */
  get llmContainerSecrets(): Record<string, BatchSecret> {
    return containerSecrets(this.llmApiKeys, LLM_FIELDS);
  }

  /** Container secrets for rollout and bake jobs: the hub token. */
  get hubContainerSecrets(): Record<string, BatchSecret> {
    return containerSecrets(this.hubToken, HUB_FIELDS);
  }
}

function emptyFields(fields: readonly string[]): Record<string, SecretValue> {
  // An empty string is no secret: the template holds nothing an operator must protect.
  return Object.fromEntries(fields.map((field) => [field, SecretValue.unsafePlainText('')]));
}

function containerSecrets(secret: Secret, fields: readonly string[]): Record<string, BatchSecret> {
  return Object.fromEntries(fields.map((field) => [field, BatchSecret.fromSecretsManager(secret, field)]));
}
