/**
 * The webhook delivery construct in a tenant stack: its queue and dead-letter queue, the
 * deliverer function fed by the queue with partial batch failures, its grants, its alarm, and the
 * tenant's webhook settings reaching every function.
 */
import { Stack, type CfnResource } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { WebhookDelivery } from '../../lib/constructs/webhook-delivery.ts';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { actionsOf, cdkApp, statementsAllowing, tenantConfig } from './support.ts';

const app = cdkApp();
const stack = new TenantStack(app, 'Bakehouse-acme', { tenant: tenantConfig() });
const open = new TenantStack(app, 'Bakehouse-lab', { tenant: tenantConfig({ tenantId: 'lab', webhooks: { allowPrivateAddresses: true, allowHttp: true } }) });
const template = Template.fromStack(stack);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, any> }>;

function idOf(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnResource);
}
const arn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

const ids = {
  queue: idOf(stack.webhookDelivery.queue),
  deadLetters: idOf(stack.webhookDelivery.deadLetterQueue),
  deliverer: idOf(stack.webhookDelivery.deliverer.function),
  delivererRole: idOf(stack.webhookDelivery.deliverer.role),
};

describe('webhook delivery', () => {
  it('queues deliveries encrypted, hidden for six deliverer timeouts, dead-lettered after five receives', () => {
    const queue = resources[ids.queue]!.Properties;
    expect(queue.SqsManagedSseEnabled).toBe(true);
    expect(queue.VisibilityTimeout).toBe(6 * WebhookDelivery.TIMEOUT.toSeconds());
    expect(queue.RedrivePolicy).toEqual({ deadLetterTargetArn: arn(ids.deadLetters), maxReceiveCount: 5 });
    expect(resources[ids.deadLetters]!.Properties).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
  });

  it('feeds the deliverer ten records at a time, five batches at once, reporting failed records alone', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arn(ids.queue),
      FunctionName: { Ref: ids.deliverer },
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 5 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('runs the deliverer outside any VPC, so it reaches endpoints on the internet', () => {
    expect(resources[ids.deliverer]!.Properties).toMatchObject({ Timeout: 60, Environment: { Variables: { WEBHOOK_DELIVERY_QUEUE_URL: { Ref: ids.queue } } } });
    expect(resources[ids.deliverer]!.Properties.VpcConfig).toBeUndefined();
  });

  it('lets the deliverer use the table and its own queue, and nothing else', () => {
    const json = template.toJSON() as Parameters<typeof actionsOf>[0];
    const actions = actionsOf(json, ids.delivererRole);
    expect(actions.filter((action) => /^(s3|batch|secretsmanager):/.test(action))).toEqual([]);
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage']));
    expect(statementsAllowing(json, ids.delivererRole, 'sqs:SendMessage').map((statement) => statement.Resource)).toEqual([arn(ids.queue)]);
    expect(statementsAllowing(json, ids.delivererRole, 'sqs:ReceiveMessage').map((statement) => statement.Resource)).toEqual([arn(ids.queue)]);
  });

  it("gives every function that publishes events the queue's URL and sqs:SendMessage on it", () => {
    const json = template.toJSON() as Parameters<typeof actionsOf>[0];
    const { api, chat, jobLambdas } = stack;
    for (const fn of [api, chat, ...jobLambdas.all]) {
      expect(resources[idOf(fn.function)]!.Properties.Environment.Variables.WEBHOOK_DELIVERY_QUEUE_URL).toEqual({ Ref: ids.queue });
      const resourcesSentTo = statementsAllowing(json, idOf(fn.role), 'sqs:SendMessage').flatMap((statement) => [statement.Resource].flat());
      expect(resourcesSentTo, fn.function.node.path).toContainEqual(arn(ids.queue));
    }
  });

  it('alarms on the first dead-lettered delivery message and on deliverer errors', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.deadLetters, 'QueueName'] } }],
      Threshold: 1,
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: ids.deliverer } }] });
  });

  it('passes the tenant webhook settings to every function, and leaves them off by default', () => {
    expect(JSON.stringify(resources)).not.toMatch(/BAKEHOUSE_WEBHOOK_ALLOW_(PRIVATE|HTTP)/);
    const functions = Object.values(Template.fromStack(open).findResources('AWS::Lambda::Function')).filter((fn) => fn.Properties.Environment?.Variables?.TABLE_NAME);
    expect(functions).toHaveLength(6);
    for (const fn of functions) {
      expect(fn.Properties.Environment.Variables).toMatchObject({ BAKEHOUSE_WEBHOOK_ALLOW_PRIVATE: '1', BAKEHOUSE_WEBHOOK_ALLOW_HTTP: '1' });
    }
  });
});
