import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership, type CfnBucket } from 'aws-cdk-lib/aws-s3';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { acknowledgeWildcard } from './acknowledge.ts';

const TRAINING_KEYED_BY = 'Training files are keyed by run, checkpoint and name (training/runs/<runId>/...)';
const TRAINING_BODIES_KEYED_BY = 'Operation bodies and results are keyed by run and operation (tmp/training/<runId>/...)';

export interface ArtifactBucketProps {
  /**
   * RETAIN (the default) keeps both buckets and their objects when the stack is deleted.
   * DESTROY empties and deletes them with the stack (throwaway tenants).
   */
  readonly removalPolicy?: RemovalPolicy;
  /** How long server access logs are kept. Default: 90 days. */
  readonly accessLogRetention?: Duration;
}

/**
 * The Blobs bucket (functions/adapters/aws/s3-blobs.ts): every job's spec, progress, outputs and
 * checkpoints under `jobs/<jobId>/` (functions/core/jobs/job-outputs.ts), training runs'
 * checkpoints and state under `training/`, and scratch space under `tmp/` that expires by itself.
 *
 * S3-managed encryption rather than a KMS key: every reader (four functions, the engine, and
 * whoever follows a presigned download URL) would otherwise also need kms:Decrypt, for no gain
 * in who can read what. Not versioned: the engine rewrites progress.json many times a job, and
 * each rewrite would keep a noncurrent copy. Access is logged to a second bucket.
 */
export class ArtifactBucket extends Construct {
  /** Where the job files live; every grant stays inside it. */
  static readonly JOBS_PREFIX = 'jobs/';
  /** Objects here are deleted a day after they are written. */
  static readonly TMP_PREFIX = 'tmp/';
  static readonly CHAT_BODIES_PREFIX = 'tmp/chat/';
  /** Training runs' checkpoints and autosaved state (functions/core/training/checkpoint-paths.ts). */
  static readonly TRAINING_PREFIX = 'training/';
  /** Training operations' bodies and results too large for a Store item (functions/core/training/operation-queue.ts). */
  static readonly TRAINING_BODIES_PREFIX = 'tmp/training/';

  readonly bucket: Bucket;
  readonly accessLogs: Bucket;

  constructor(scope: Construct, id: string, props: ArtifactBucketProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    // A non-empty bucket blocks stack deletion; throwaway tenants empty theirs on the way out.
    const autoDeleteObjects = removalPolicy === RemovalPolicy.DESTROY;

    this.accessLogs = new Bucket(this, 'AccessLogs', {
      // S3 delivers server access logs only to buckets encrypted with S3-managed keys.
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      // Object ownership is left to CDK: it depends on whether log delivery is granted by bucket
      // policy (the @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy flag) or by ACL.
      enforceSSL: true,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: props.accessLogRetention ?? Duration.days(90) }],
      removalPolicy,
      autoDeleteObjects,
    });
    NagSuppressions.addResourceSuppressions(this.accessLogs, [
      {
        id: 'AwsSolutions-S1',
        reason:
          'This bucket receives the artifact bucket\'s server access logs; logging its own access would log into ' +
          'itself without end, and only the S3 logging service writes to it.',
      },
    ]);

    this.bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'artifacts/',
      lifecycleRules: [
        { id: 'expire-tmp', prefix: ArtifactBucket.TMP_PREFIX, expiration: Duration.days(1) },
        // Uploads the engine started but never finished (a reclaimed spot instance) are billed
        // until aborted.
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy,
      autoDeleteObjects,
    });
  }

  get bucketName(): string {
    return this.bucket.bucketName;
  }

  /**
   * s3:GetObject on `jobs/*` (also what a presigned download URL is signed for), and
   * s3:ListBucket on the bucket: without it S3 answers 403 instead of 404 for a missing key, and
   * the Blobs port reads "missing" (no progress yet, no result.json after a crash) as undefined.
   */
  grantReadJobFiles(grantee: IGrantable): Grant {
    return this.grantOnJobFiles(grantee, ['s3:GetObject']).combine(this.grantList(grantee));
  }

  /** s3:PutObject on `jobs/*` (multipart uploads included). */
  grantWriteJobFiles(grantee: IGrantable): Grant {
    return this.grantOnJobFiles(grantee, ['s3:PutObject']);
  }

  /** s3:DeleteObject on `jobs/*` (DeleteObjects checks it per key). */
  grantDeleteJobFiles(grantee: IGrantable): Grant {
    return this.grantOnJobFiles(grantee, ['s3:DeleteObject']);
  }

  /**
   * The engine's access: read, write, and abort the multipart uploads it gives up on, for job files
   * and for training files (a trainer saves checkpoints and state there; a sampler loads adapters).
   */
  grantEngineAccess(grantee: IGrantable): Grant {
    const actions = ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'];
    return this.grantReadJobFiles(grantee)
      .combine(this.grantWriteJobFiles(grantee))
      .combine(this.grantOnJobFiles(grantee, ['s3:AbortMultipartUpload']))
      .combine(this.grantOnPrefix(grantee, actions, ArtifactBucket.TRAINING_PREFIX, TRAINING_KEYED_BY));
  }

  /**
   * What the API does with training files: presigned checkpoint downloads (get), deleting a
   * checkpoint's files (delete), listing them; and get, put and delete on `tmp/training/*`, the
   * bodies and results of operations too large for a Store item.
   */
  grantTrainingAccess(grantee: IGrantable): Grant {
    return this.grantOnPrefix(grantee, ['s3:GetObject', 's3:DeleteObject'], ArtifactBucket.TRAINING_PREFIX, TRAINING_KEYED_BY)
      .combine(
        this.grantOnPrefix(
          grantee,
          ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
          ArtifactBucket.TRAINING_BODIES_PREFIX,
          TRAINING_BODIES_KEYED_BY,
        ),
      )
      .combine(this.grantList(grantee));
  }

  /**
   * Delete on `training/*` and `tmp/training/*`, and list: what following a trainer's end (the
   * bodies of the operations it left) and retiring checkpoints past their retention remove.
   */
  grantDeleteTrainingFiles(grantee: IGrantable): Grant {
    return this.grantOnPrefix(grantee, ['s3:DeleteObject'], ArtifactBucket.TRAINING_PREFIX, TRAINING_KEYED_BY)
      .combine(this.grantOnPrefix(grantee, ['s3:DeleteObject'], ArtifactBucket.TRAINING_BODIES_PREFIX, TRAINING_BODIES_KEYED_BY))
      .combine(this.grantList(grantee));
  }

  /** Get, put and delete on `tmp/chat/*`: chat requests too large for a Store item (functions/core/chat). */
  grantChatBodies(grantee: IGrantable): Grant {
    return this.grantOnPrefix(grantee, ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], ArtifactBucket.CHAT_BODIES_PREFIX, 'Chat request bodies are keyed by request id (tmp/chat/<id>.json)')
      .combine(this.grantList(grantee));
  }

  private grantOnJobFiles(grantee: IGrantable, actions: string[]): Grant {
    return this.grantOnPrefix(grantee, actions, ArtifactBucket.JOBS_PREFIX, 'Job files are keyed by job id (jobs/<jobId>/...)');
  }

  private grantOnPrefix(grantee: IGrantable, actions: string[], prefix: string, keyedBy: string): Grant {
    const grant = Grant.addToPrincipal({ grantee, actions, resourceArns: [this.bucket.arnForObjects(`${prefix}*`)] });
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as CfnBucket);
    acknowledgeWildcard(
      grantee,
      `Resource::<${bucketId}.Arn>/${prefix}*`,
      `${keyedBy}, which exists only at run time; the wildcard stays under the ${prefix} prefix of this tenant's own bucket.`,
    );
    return grant;
  }

  private grantList(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({ grantee, actions: ['s3:ListBucket'], resourceArns: [this.bucket.bucketArn] });
  }
}
