import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData, type IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Rule } from 'aws-cdk-lib/aws-events';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface AlarmsProps {
  /** Subscribed to the alarm topic; AWS sends it a confirmation link first. Default: none. */
  readonly email?: string;
}

/** How many failed engine jobs in an hour are worth a look rather than one user's bad input. */
const FAILED_JOBS_PER_HOUR = 3;

/**
 * The tenant's alarms, all notifying one SNS topic (with the operator's email, when configured).
 * Every alarm treats missing data as OK: these metrics are only published when something
 * happens, and silence means nothing went wrong.
 */
export class Alarms extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];
  private readonly action: SnsAction;

  constructor(scope: Construct, id: string, props: AlarmsProps = {}) {
    super(scope, id);
    this.topic = new Topic(this, 'Topic', { displayName: 'Bakehouse alarms', enforceSSL: true });
    this.action = new SnsAction(this.topic);
    if (props.email) {
      const subscription = this.topic.addSubscription(new EmailSubscription(props.email));
      NagSuppressions.addResourceSuppressions(subscription, [
        {
          id: 'Serverless-SNSRedrivePolicy',
          reason:
            'An email subscription: an alarm email SNS could not deliver has no consumer to replay it from a ' +
            'dead-letter queue, and the alarm itself stays visible in CloudWatch.',
        },
      ]);
    }
    NagSuppressions.addResourceSuppressions(this.topic, [
      {
        id: 'AwsSolutions-SNS2',
        reason:
          'Alarm notifications carry alarm names and states, nothing confidential. CloudWatch can publish to an ' +
          "encrypted topic only through a customer-managed key whose policy admits it (the AWS-managed key's does " +
          'not), which would add a key to every tenant for no protection of value.',
      },
    ]);
  }

  /** Any message in a dead-letter queue: a job message or an event that every retry failed. */
  alarmOnDeadLetters(id: string, queue: IQueue, what: string): Alarm {
    return this.add(id, queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5) }), {
      threshold: 1,
      evaluationPeriods: 1,
      description: `${what} reached a dead-letter queue. Inspect the messages, fix the cause, then redrive them.`,
    });
  }

  /** Invocations that ended in an error (a crash or a timeout), in two of three 5-minute periods. */
  alarmOnFunctionErrors(id: string, fn: IFunction, what: string): Alarm {
    return this.add(id, fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }), {
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: `The ${what} function keeps failing. Its log group holds the errors.`,
    });
  }

  /**
   * HTTP 5xx answers from an API's Function URL (Url5xxCount, published per function): errors the
   * app caught and answered with a 500 never count as Lambda errors.
   */
  alarmOnApi5xx(id: string, fn: IFunction, what = 'API'): Alarm {
    const metric = new Metric({
      namespace: 'AWS/Lambda',
      metricName: 'Url5xxCount',
      dimensionsMap: { FunctionName: fn.functionName },
      statistic: 'Sum',
      period: Duration.minutes(5),
    });
    return this.add(id, metric, {
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: `The ${what} keeps answering with 5xx errors. The ${what} function's log group holds the errors.`,
    });
  }

  /** Any further metric to alarm on (for example the custom domain's 5xx count). */
  alarmOn(id: string, metric: IMetric, threshold: number, description: string): Alarm {
    return this.add(id, metric, { threshold, evaluationPeriods: 3, datapointsToAlarm: 2, description });
  }

  /**
   * Engine jobs that Batch reports FAILED. EventBridge counts every event a rule matches
   * (`TriggeredRules`), so a rule without targets turns "Batch Job State Change" events into a
   * metric, with no function or log group in between.
   */
  alarmOnFailedBatchJobs(id: string, jobQueueArns: string[]): Alarm {
    const rule = new Rule(this, `${id}Rule`, {
      description: "Bakehouse: counts this tenant's failed AWS Batch jobs (TriggeredRules metric; no targets)",
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job State Change'],
        detail: { jobQueue: jobQueueArns, status: ['FAILED'] },
      },
    });
    NagSuppressions.addResourceSuppressions(rule, [
      {
        id: 'Serverless-EventBusDLQ',
        reason:
          'This rule has no targets, so nothing can fail delivery: it exists for its TriggeredRules metric, ' +
          'which the alarm below counts.',
      },
    ]);
    const metric = new Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { RuleName: rule.ruleName },
      statistic: 'Sum',
      period: Duration.hours(1),
    });
    return this.add(id, metric, {
      threshold: FAILED_JOBS_PER_HOUR,
      evaluationPeriods: 1,
      description:
        `${FAILED_JOBS_PER_HOUR} or more engine jobs failed within an hour. The engine's log group holds their ` +
        'output; the jobs\' errors are on the API.',
    });
  }

  private add(
    id: string,
    metric: IMetric,
    options: { threshold: number; evaluationPeriods: number; datapointsToAlarm?: number; description: string },
  ): Alarm {
    const alarm = new Alarm(this, id, {
      metric,
      threshold: options.threshold,
      evaluationPeriods: options.evaluationPeriods,
      datapointsToAlarm: options.datapointsToAlarm,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    alarm.addAlarmAction(this.action);
    this.alarms.push(alarm);
    return alarm;
  }
}
