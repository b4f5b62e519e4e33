import { CfnOutput, Fn, RemovalPolicy, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { TenantConfig } from './config.ts';
import { Alarms } from './constructs/alarms.ts';
import { Api } from './constructs/api.ts';
import { ApiDomain } from './constructs/api-domain.ts';
import { ApiSecrets } from './constructs/api-secrets.ts';
import { ArtifactBucket } from './constructs/artifact-bucket.ts';
import { BatchNetwork } from './constructs/batch-network.ts';
import { DataPlane } from './constructs/data-plane.ts';
import { EngineBatch } from './constructs/engine-batch.ts';
import { EngineSecrets } from './constructs/engine-secrets.ts';
import { ItemTable } from './constructs/item-table.ts';
import { JobLambdas } from './constructs/job-lambdas.ts';
import { JobQueue } from './constructs/job-queue.ts';
import { WebhookDelivery } from './constructs/webhook-delivery.ts';

export interface TenantStackProps extends StackProps {
  readonly tenant: TenantConfig;
}

/** The stack name for a tenant: `Bakehouse-<tenantId>`. */
export function tenantStackName(tenantId: string): string {
  return `Bakehouse-${tenantId}`;
}

/**
 * One tenant's deployment (DESIGN.md §7): the API and the job flow's functions over one table,
 * one bucket and one queue, and the engine on AWS Batch. Each function is granted exactly the
 * calls its code makes (functions/adapters/aws), on this tenant's resources.
 */
export class TenantStack extends Stack {
  readonly table: ItemTable;
  readonly secrets: ApiSecrets;
  readonly engineSecrets: EngineSecrets;
  readonly artifacts: ArtifactBucket;
  readonly jobQueue: JobQueue;
  readonly network: BatchNetwork;
  readonly engine: EngineBatch;
  readonly api: Api;
  /** The same API with streamed responses, for chat clients (SSE) and long waits for a sampler. */
  readonly chat: Api;
  readonly apiDomain?: ApiDomain;
  /** The same API on Fargate behind a load balancer, for the training data plane's large bodies. */
  readonly dataPlane?: DataPlane;
  readonly jobLambdas: JobLambdas;
  readonly webhookDelivery: WebhookDelivery;
  readonly alarms: Alarms;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    const { tenant, ...stackProps } = props;
    super(scope, id, {
      stackName: tenantStackName(tenant.tenantId),
      description: `Bakehouse tenant ${tenant.tenantId}`,
      env: { account: tenant.account, region: tenant.region },
      terminationProtection: tenant.deletionProtection,
      ...stackProps,
    });
    Tags.of(this).add('bakehouse:tenant', tenant.tenantId);
    const removalPolicy = tenant.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const logRetention = tenant.api.logRetentionDays as RetentionDays;

    // State.
    this.table = new ItemTable(this, 'Items', { deletionProtection: tenant.deletionProtection, removalPolicy });
    this.artifacts = new ArtifactBucket(this, 'Artifacts', { removalPolicy });
    this.jobQueue = new JobQueue(this, 'JobQueue', { consumerTimeout: JobLambdas.DISPATCHER_TIMEOUT });
    this.secrets = new ApiSecrets(this, 'Secrets', { removalPolicy });
    this.engineSecrets = new EngineSecrets(this, 'EngineSecrets', { removalPolicy });

    // The engine.
    this.network = new BatchNetwork(this, 'Network', { flowLogRetention: logRetention, removalPolicy });
    this.engine = new EngineBatch(this, 'Engine', {
      network: this.network,
      gpu: tenant.gpu,
      gpuLanes: tenant.gpuLanes,
      cpuMaxVcpus: tenant.cpu.maxVcpus,
      secrets: this.engineSecrets,
      logRetention,
      removalPolicy,
    });
    this.artifacts.grantEngineAccess(this.engine.jobRole);
    this.engine.grantDatasetRead(tenant.datasetUriPrefixes ?? []);

    // The functions, all configured alike (functions/composition.ts `awsConfigFromEnv`).
    const environment: Record<string, string> = {
      TABLE_NAME: this.table.tableName,
      ARTIFACT_BUCKET: this.artifacts.bucketName,
      JOB_QUEUE_URL: this.jobQueue.queueUrl,
      BATCH_GPU_QUEUE: this.engine.gpu.jobQueue.jobQueueArn,
      BATCH_CPU_QUEUE: this.engine.cpu.jobQueue.jobQueueArn,
      BATCH_GPU_JOB_DEFINITION: this.engine.gpu.jobDefinition.jobDefinitionArn,
      BATCH_CPU_JOB_DEFINITION: this.engine.cpu.jobDefinition.jobDefinitionArn,
      ...(tenant.gpuLanes.length > 0 ? { BATCH_GPU_LANES: this.gpuLanesSetting(tenant) } : {}),
      ...(tenant.baseModels ? { BAKEHOUSE_BASE_MODELS: tenant.baseModels.join(',') } : {}),
      ...(tenant.defaultBaseModel ? { BAKEHOUSE_DEFAULT_BASE_MODEL: tenant.defaultBaseModel } : {}),
      ...(tenant.samplerIdleMinutes ? { BAKEHOUSE_SAMPLER_IDLE_SECONDS: String(tenant.samplerIdleMinutes * 60) } : {}),
      ...(tenant.samplerMaxQueued ? { BAKEHOUSE_SAMPLER_MAX_QUEUED: String(tenant.samplerMaxQueued) } : {}),
      ...(tenant.datasetUriPrefixes?.length ? { BAKEHOUSE_DATASET_URI_PREFIXES: tenant.datasetUriPrefixes.join(',') } : {}),
      ...(tenant.webhooks.allowPrivateAddresses ? { BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE: '1' } : {}),
      ...(tenant.webhooks.allowHttp ? { BAKEHOUSE_WEBHOOK_ALLOW_HTTP: '1' } : {}),
    };
    // Every function may publish events, which queues their webhook deliveries.
    this.webhookDelivery = new WebhookDelivery(this, 'WebhookDelivery', { environment, logRetention, removalPolicy });
    environment.WEBHOOK_DELIVERY_QUEUE_URL = this.webhookDelivery.queueUrl;
    if (tenant.dataPlane.enabled) {
      this.dataPlane = new DataPlane(this, 'DataPlane', {
        network: this.network,
        settings: tenant.dataPlane,
        environment,
        accessLogs: this.artifacts.accessLogs,
        logRetention,
        removalPolicy,
      });
      // Every function learns the data plane's origin: the Loops base URLs are built on it, and
      // trainers (started by the API or by job events) relay through it, as their bodies are large.
      environment.BAKEHOUSE_DATA_PLANE_URL = this.dataPlane.url;
    }
    this.api = new Api(this, 'Api', {
      environment,
      adminKeySecretArn: this.secrets.adminKey.secretArn,
      reservedConcurrency: tenant.api.reservedConcurrency,
      logRetention,
      removalPolicy,
    });
    this.chat = new Api(this, 'Chat', { environment, streaming: true, reservedConcurrency: tenant.api.reservedConcurrency, logRetention, removalPolicy });
    this.jobLambdas = new JobLambdas(this, 'Jobs', {
      environment,
      jobQueue: this.jobQueue,
      batchJobQueueArns: this.engine.jobQueueArns,
      logRetention,
      removalPolicy,
    });
    if (tenant.domain) {
      this.apiDomain = new ApiDomain(this, 'ApiDomain', {
        handler: this.api.function,
        domainName: tenant.domain.name,
        certificateArn: tenant.domain.certificateArn,
        logRetention,
        removalPolicy,
      });
    }
    this.grantLeastPrivilege();

    this.alarms = new Alarms(this, 'Alarms', { email: tenant.alarmEmail });
    this.alarms.alarmOnDeadLetters('JobMessagesDeadLettered', this.jobQueue.deadLetterQueue, 'A job message that the dispatcher kept failing on');
    this.alarms.alarmOnDeadLetters('EventsDeadLettered', this.jobLambdas.eventDeadLetters, 'A Batch state change or reconciler run');
    this.alarms.alarmOnDeadLetters('WebhookDeliveriesDeadLettered', this.webhookDelivery.deadLetterQueue, 'A webhook delivery message that could not be recorded');
    this.alarms.alarmOnApi5xx('Api5xx', this.api.function);
    this.alarms.alarmOnApi5xx('Chat5xx', this.chat.function, 'chat API');
    this.alarms.alarmOnFunctionErrors('ApiErrors', this.api.function, 'API');
    this.alarms.alarmOnFunctionErrors('ChatErrors', this.chat.function, 'chat API');
    this.alarms.alarmOnFunctionErrors('DispatcherErrors', this.jobLambdas.dispatcher.function, 'dispatcher');
    this.alarms.alarmOnFunctionErrors('JobEventsErrors', this.jobLambdas.jobEvents.function, 'job-events');
    this.alarms.alarmOnFunctionErrors('ReconcilerErrors', this.jobLambdas.reconciler.function, 'reconciler');
    this.alarms.alarmOnFunctionErrors('WebhookDelivererErrors', this.webhookDelivery.deliverer.function, 'webhook deliverer');
    this.alarms.alarmOnFailedBatchJobs('FailedBatchJobs', this.engine.jobQueueArns);
    if (this.dataPlane) {
      this.alarms.alarmOn('DataPlane5xx', this.dataPlane.metricServerErrors(), 5, 'The training data plane keeps answering with 5xx errors.');
    }
    if (this.apiDomain) {
      this.alarms.alarmOn('ApiDomain5xx', this.apiDomain.metricServerErrors(), 5, 'The API keeps answering with 5xx errors on its custom domain.');
    }

    new CfnOutput(this, 'ApiUrl', {
      value: this.apiDomain?.url ?? this.api.baseUrl,
      description: 'Base URL of the Bread and Loops APIs (BREAD_BASE_URL)',
    });
    if (this.apiDomain) {
      new CfnOutput(this, 'ApiDomainTarget', {
        value: this.apiDomain.regionalDomainName,
        description: `Point a CNAME record for ${tenant.domain?.name} at this name`,
      });
      new CfnOutput(this, 'FunctionUrl', { value: this.api.baseUrl, description: 'The API without the custom domain' });
    }
    if (this.dataPlane) {
      new CfnOutput(this, 'DataPlaneUrl', {
        value: this.dataPlane.url,
        description: 'Origin of the training data plane (BAKEHOUSE_DATA_PLANE_URL): Loops run and sampler base URLs start with it',
      });
      if (tenant.dataPlane.domainName) {
        new CfnOutput(this, 'DataPlaneDomainTarget', {
          value: this.dataPlane.loadBalancerDnsName,
          description: `Point a CNAME record for ${tenant.dataPlane.domainName} at this name`,
        });
      }
    }
    new CfnOutput(this, 'ChatUrl', {
      value: this.chat.baseUrl,
      description: 'Base URL for chat clients (BAKEHOUSE_BASE_URL): the same API, with streamed replies and waits of up to 15 minutes',
    });
    new CfnOutput(this, 'AdminKeySecretArn', {
      value: this.secrets.adminKey.secretArn,
      description: 'Secret holding the admin API key: aws secretsmanager get-secret-value --secret-id <arn>',
    });
    new CfnOutput(this, 'LlmApiKeysSecretArn', {
      value: this.engineSecrets.llmApiKeys.secretArn,
      description: 'Secret for the question LLM (ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENAI_BASE_URL) used by stim jobs',
    });
    new CfnOutput(this, 'HubTokenSecretArn', {
      value: this.engineSecrets.hubToken.secretArn,
      description: 'Secret for the Hugging Face Hub token (HF_TOKEN) used by rollout and bake jobs',
    });
    new CfnOutput(this, 'ArtifactBucketName', { value: this.artifacts.bucketName, description: 'Job files (jobs/<jobId>/)' });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn, description: 'Alarm notifications' });
  }

  /**
   * Two availability zones by intrinsic function rather than by lookup, so that synth needs no AWS
   * credentials even when the tenant names its account (a lookup would ask the account).
   */
  override get availabilityZones(): string[] {
    return [Fn.select(0, Fn.getAzs()), Fn.select(1, Fn.getAzs())];
  }

  /**
   * What serving the API takes: every route; starting a job writes its spec and sends its message;
   * deleting an owner terminates its running job and deletes its files; downloads are presigned
   * GETs; chat replies may start a sampler job and park a large conversation in tmp/chat/;
   * training operations park large bodies and results in tmp/training/, and checkpoints are
   * listed, downloaded and deleted under training/.
   */
  private grantServeApi(server: IGrantable): void {
    const { table, artifacts, jobQueue, engine, webhookDelivery } = this;
    table.grantStoreAccess(server);
    artifacts.grantReadJobFiles(server);
    artifacts.grantWriteJobFiles(server);
    artifacts.grantDeleteJobFiles(server);
    artifacts.grantChatBodies(server);
    artifacts.grantTrainingAccess(server);
    jobQueue.grantSendJobMessages(server);
    engine.grantTerminateJobs(server);
    webhookDelivery.grantSendDeliveryMessages(server);
  }

  /**
   * `BATCH_GPU_LANES` (functions/composition.ts): the lanes bakes may be sent to, the default GPU
   * queue (one GPU of `gpu.gpuMemoryGiB`) first.
   */
  private gpuLanesSetting(tenant: TenantConfig): string {
    const { gpu, gpuLanes } = this.engine;
    return this.toJsonString([
      { name: 'default', queue: gpu.jobQueue.jobQueueArn, definition: gpu.jobDefinition.jobDefinitionArn, gpusPerNode: 1, gpuMemoryGiB: tenant.gpu.gpuMemoryGiB, maxNodes: 1 },
      ...gpuLanes.map(({ settings, jobQueue, jobDefinition, multiNodeJobDefinition }) => ({
        name: settings.name,
        queue: jobQueue.jobQueueArn,
        definition: jobDefinition.jobDefinitionArn,
        ...(multiNodeJobDefinition ? { multiNodeDefinition: multiNodeJobDefinition.jobDefinitionArn } : {}),
        gpusPerNode: settings.gpusPerNode,
        gpuMemoryGiB: settings.gpuMemoryGiB,
        maxNodes: settings.maxNodes,
      })),
    ]);
  }

  /** Each function gets the calls its code makes (functions/core/jobs/job-pipeline.ts), no more. */
  private grantLeastPrivilege(): void {
    const { api, chat, jobLambdas, table, artifacts, jobQueue, engine, webhookDelivery } = this;
    const { dispatcher, jobEvents, reconciler } = jobLambdas;

    // Webhooks: every function that moves a job or serves the API publishes events, which queues
    // their deliveries (the APIs' grant is in grantServeApi); the deliverer reads and records
    // deliveries and queues retries itself.
    for (const fn of [dispatcher.function, jobEvents.function, reconciler.function]) {
      webhookDelivery.grantSendDeliveryMessages(fn);
    }
    table.grantStoreAccess(webhookDelivery.deliverer.function);

    // The APIs (buffered, chat, and the data plane) serve every route, each with the same grants,
    // bar the admin key that only the buffered API installs.
    for (const server of [api.function, chat.function, ...(this.dataPlane ? [this.dataPlane.taskRole] : [])]) this.grantServeApi(server);
    this.secrets.grantReadAdminKey(api.function);

    // Dispatcher: claims the job, reads its spec, submits it; terminates the Batch job it just
    // submitted when the job was deleted meanwhile. (Consuming the queue is the event source's grant.)
    table.grantStoreAccess(dispatcher.function);
    artifacts.grantReadJobFiles(dispatcher.function);
    engine.grantSubmitJobs(dispatcher.function);
    engine.grantTerminateJobs(dispatcher.function);

    // Job events: applies the state change and copies the engine's result.json into the job.
    table.grantStoreAccess(jobEvents.function);
    artifacts.grantReadJobFiles(jobEvents.function);

    // Both apply trainer ends (functions/core/training/trainer-relay.ts): the operations a stopped
    // trainer left fail (their parked bodies deleted), and the next trainer starts when operations
    // wait (its spec written, its message sent); checkpoints past their retention are deleted.
    for (const fn of [jobEvents.function, reconciler.function]) {
      artifacts.grantDeleteTrainingFiles(fn);
      artifacts.grantWriteJobFiles(fn);
    }
    jobQueue.grantSendJobMessages(jobEvents.function);

    // Reconciler: re-sends queued jobs, asks Batch about submitted ones, and finishes the clean-up
    // of jobs whose owner was deleted (terminate, delete record and files).
    table.grantStoreAccess(reconciler.function);
    artifacts.grantReadJobFiles(reconciler.function);
    artifacts.grantDeleteJobFiles(reconciler.function);
    jobQueue.grantSendJobMessages(reconciler.function);
    engine.grantDescribeJobs(reconciler.function);
    engine.grantTerminateJobs(reconciler.function);
  }
}
