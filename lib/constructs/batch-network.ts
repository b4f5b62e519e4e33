import { RemovalPolicy } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  SecurityGroup,
  SubnetType,
  Vpc,
  type SubnetSelection,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface BatchNetworkProps {
  /** Default: one month. */
  readonly flowLogRetention?: RetentionDays;
  /** What happens to the flow log group when it leaves the stack. Default: RETAIN. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Where the engine runs: a VPC of public subnets in two availability zones, with no NAT gateway.
 *
 * Engine jobs only reach out (ECR, S3, the Hugging Face Hub, LLM APIs) and accept no inbound
 * connections (DESIGN.md §1: requests reach long-running jobs by relay), so a security group with
 * no ingress rules protects them as well as a private subnet would, without a NAT gateway's hourly
 * charge and per-GB processing of multi-GB model downloads. S3 traffic stays on a gateway endpoint.
 * Rejected connections are recorded in flow logs.
 */
export class BatchNetwork extends Construct {
  readonly vpc: Vpc;
  /** Egress only: no rule lets anything in. */
  readonly securityGroup: SecurityGroup;
  readonly subnets: SubnetSelection = { subnetType: SubnetType.PUBLIC };

  constructor(scope: Construct, id: string, props: BatchNetworkProps = {}) {
    super(scope, id);
    this.vpc = new Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Engine', subnetType: SubnetType.PUBLIC, cidrMask: 20 }],
      gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
    });
    this.vpc.addFlowLog('FlowLog', {
      trafficType: FlowLogTrafficType.REJECT,
      destination: FlowLogDestination.toCloudWatchLogs(
        new LogGroup(this, 'FlowLogs', {
          retention: props.flowLogRetention ?? RetentionDays.ONE_MONTH,
          removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
        }),
      ),
    });
    this.securityGroup = new SecurityGroup(this, 'EngineSecurityGroup', {
      vpc: this.vpc,
      description: 'Bakehouse engine jobs: outbound only (ECR, S3, model hub, LLM APIs)',
      allowAllOutbound: true,
    });
  }
}
