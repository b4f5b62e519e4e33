/**
 * GPU lanes (tenant `gpuLanes`): a compute environment, job queue and job definitions per lane,
 * multi-node parallel jobs with their placement group and node-to-node network, the dispatcher's
 * grants and lane settings, and cdk-nag with every suppression explained.
 */
import { Aspects, Stack, type CfnResource } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { loadTenants } from '../../lib/config.ts';
import { TenantStack } from '../../lib/tenant-stack.ts';
import { cdkApp, statementsAllowing, tenantConfig } from './support.ts';

const quad = { name: 'quad', instanceTypes: ['g6e.12xlarge'], gpusPerNode: 4, gpuMemoryGiB: 48, maxVcpus: 96, jobVcpus: 44, jobMemoryMiB: 360_000 };
const p5 = {
  name: 'p5',
  instanceTypes: ['p5.48xlarge'],
  gpusPerNode: 8,
  gpuMemoryGiB: 80,
  maxNodes: 4,
  maxVcpus: 768,
  jobVcpus: 188,
  jobMemoryMiB: 1_900_000,
};

const app = cdkApp({ '@aws-cdk/core:annotationsInValidationReport': false });
const stack = new TenantStack(app, 'Bakehouse-lanes', { tenant: tenantConfig({ tenantId: 'lanes', gpuLanes: [quad, p5] }) });
const plain = new TenantStack(app, 'Bakehouse-plain', { tenant: tenantConfig({ tenantId: 'plain' }) });
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
const assembly = app.synth();
const template = Template.fromStack(stack);
// Template JSON is untyped; the assertions below are what check its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, Json>; Metadata?: Json }>;
const [quadLane, p5Lane] = stack.engine.gpuLanes;

function idOf(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnResource);
}

describe('GPU lanes', () => {
  it('builds one EC2 compute environment per lane, besides the default GPU one, with the lane’s instance types on the NVIDIA AMI', () => {
    template.resourceCountIs('AWS::Batch::ComputeEnvironment', 4);
    for (const [lane, types, maxvCpus] of [
      [quadLane!, ['g6e.12xlarge'], 96],
      [p5Lane!, ['p5.48xlarge'], 768],
    ] as const) {
      const environment = resources[idOf(lane.computeEnvironment)]!.Properties;
      expect(environment.ComputeResources).toMatchObject({
        Type: 'EC2',
        InstanceTypes: types,
        MinvCpus: 0,
        MaxvCpus: maxvCpus,
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
      });
    }
  });

  it('gives each lane its own job queue, on its own compute environment', () => {
    template.resourceCountIs('AWS::Batch::JobQueue', 4);
    for (const lane of [quadLane!, p5Lane!]) {
      expect(resources[idOf(lane.jobQueue)]!.Properties.ComputeEnvironmentOrder).toEqual([
        { ComputeEnvironment: { 'Fn::GetAtt': [idOf(lane.computeEnvironment), 'ComputeEnvironmentArn'] }, Order: 1 },
      ]);
    }
  });

  it('gives a single-node job every GPU of its instance, with the vCPUs and memory configured', () => {
    const container = resources[idOf(quadLane!.jobDefinition)]!.Properties.ContainerProperties;
    expect(container.ResourceRequirements).toEqual(
      expect.arrayContaining([
        { Type: 'GPU', Value: '4' },
        { Type: 'VCPU', Value: '44' },
        { Type: 'MEMORY', Value: '360000' },
      ]),
    );
    expect(container.Command).toBeUndefined();
  });

  it('defines multi-node parallel jobs only for lanes of more than one node: main node 0, every node the same GPU container', () => {
    expect(quadLane!.multiNodeJobDefinition).toBeUndefined();
    const definition = resources[idOf(p5Lane!.multiNodeJobDefinition!)]!.Properties;
    expect(definition.Type).toBe('multinode');
    expect(definition.PropagateTags).toBe(true);
    expect(definition.NodeProperties.MainNode).toBe(0);
    expect(definition.NodeProperties.NumNodes).toBe(4);
    expect(definition.NodeProperties.NodeRangeProperties).toHaveLength(1);
    const [range] = definition.NodeProperties.NodeRangeProperties;
    expect(range.TargetNodes).toBe('0:');
    expect(range.Container.ResourceRequirements).toEqual(
      expect.arrayContaining([
        { Type: 'GPU', Value: '8' },
        { Type: 'VCPU', Value: '188' },
        { Type: 'MEMORY', Value: '1900000' },
      ]),
    );
    expect(range.Container.JobRoleArn).toEqual({ 'Fn::GetAtt': [idOf(stack.engine.jobRole), 'Arn'] });
    expect(range.Container.LinuxParameters.SharedMemorySize).toBe(16 * 1024);
    expect(definition.RetryStrategy.EvaluateOnExit[0]).toEqual({ Action: 'RETRY', OnStatusReason: 'Host EC2*' });
  });

  it('puts a multi-node lane in a cluster placement group in one subnet, and lets its nodes reach one another', () => {
    template.resourceCountIs('AWS::EC2::PlacementGroup', 1);
    const [groupId] = Object.entries(resources).find(([, resource]) => resource.Type === 'AWS::EC2::PlacementGroup')!;
    expect(resources[groupId]!.Properties.Strategy).toBe('cluster');
    const environment = resources[idOf(p5Lane!.computeEnvironment)]!.Properties.ComputeResources;
    expect(JSON.stringify(environment.PlacementGroup)).toContain(groupId);
    expect(environment.Subnets).toHaveLength(1);
    expect(resources[idOf(quadLane!.computeEnvironment)]!.Properties.ComputeResources.Subnets).toHaveLength(2);

    const peers = environment.SecurityGroupIds.map((ref: Json) => ref['Fn::GetAtt'][0]).filter((id: string) => id !== idOf(stack.network.securityGroup));
    expect(peers).toHaveLength(1);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [peers[0], 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [peers[0], 'GroupId'] },
      IpProtocol: '-1',
    });
    // Nothing else may reach the nodes.
    const ingress = Object.values(resources).filter((resource) => resource.Type === 'AWS::EC2::SecurityGroupIngress');
    expect(ingress.every((rule) => rule.Properties.SourceSecurityGroupId !== undefined && rule.Properties.CidrIp === undefined)).toBe(true);
  });

  it('lets the dispatcher submit to every lane queue and job definition, and tells it the lanes', () => {
    const submit = statementsAllowing(template.toJSON() as Parameters<typeof statementsAllowing>[0], idOf(stack.jobLambdas.dispatcher.role), 'batch:SubmitJob');
    const allowed = JSON.stringify(submit.map((statement) => statement.Resource));
    for (const resource of [quadLane!.jobQueue, quadLane!.jobDefinition, p5Lane!.jobQueue, p5Lane!.jobDefinition, p5Lane!.multiNodeJobDefinition!]) {
      expect(allowed).toContain(idOf(resource));
    }
    const dispatcher = resources[idOf(stack.jobLambdas.dispatcher.function)]!.Properties;
    const lanes = JSON.stringify(dispatcher.Environment.Variables.BATCH_GPU_LANES);
    for (const fragment of ['"name\\":\\"default', '"gpuMemoryGiB\\":24', '"name\\":\\"p5', '"maxNodes\\":4', '"gpusPerNode\\":8', idOf(p5Lane!.multiNodeJobDefinition!)]) {
      expect(lanes).toContain(fragment);
    }
  });

  it('listens to state changes of jobs on every lane queue', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        detail: Match.objectLike({ jobQueue: Match.arrayWith([
          { 'Fn::GetAtt': [idOf(quadLane!.jobQueue), 'JobQueueArn'] },
          { 'Fn::GetAtt': [idOf(p5Lane!.jobQueue), 'JobQueueArn'] },
        ]) }),
      }),
    });
  });

  it('adds nothing to a tenant without lanes', () => {
    const plainTemplate = Template.fromStack(plain);
    plainTemplate.resourceCountIs('AWS::Batch::ComputeEnvironment', 2);
    plainTemplate.resourceCountIs('AWS::EC2::PlacementGroup', 0);
    const dispatcher = plainTemplate.toJSON().Resources[idOf(plain.jobLambdas.dispatcher.function)].Properties;
    expect(dispatcher.Environment.Variables.BATCH_GPU_LANES).toBeUndefined();
  });

  it('passes cdk-nag, acknowledging per lane only the ECS agent’s managed policy and the ECR login, with reasons', () => {
    const artifact = assembly.getStackArtifact(stack.artifactId);
    const findings = artifact.messages.filter((message) => ['error', 'warning'].includes(message.level) && /^(AwsSolutions|Serverless)-|^CdkNagValidationFailure/.test(String(message.entry.data)));
    expect(findings.map((finding) => `${finding.id}: ${String(finding.entry.data)}`)).toEqual([]);
    for (const lane of [quadLane!, p5Lane!]) {
      const laneResources = Object.entries(resources).filter(([id]) => id.includes(`GpuLane${lane.node.id.split('-')[1]}`));
      const suppressions = laneResources.flatMap(([, resource]) =>
        (resource.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule: Json) => {
          expect(rule.reason.length).toBeGreaterThan(40);
          return `${resource.Type} ${rule.id}`;
        }),
      );
      expect(suppressions.sort()).toEqual(['AWS::IAM::Policy AwsSolutions-IAM5', 'AWS::IAM::Role AwsSolutions-IAM4']);
    }
  });
});

describe('gpuLanes config', () => {
  const tenant = (gpuLanes: unknown[]) => ({ tenants: [{ tenantId: 'acme', region: 'eu-west-1', gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 8 }, gpuLanes }] });

  it('defaults to no lanes, one node per lane, on-demand, and a 24 GiB default GPU', () => {
    const [config] = loadTenants(tenant([quad]));
    expect(config!.gpu.gpuMemoryGiB).toBe(24);
    expect(config!.gpuLanes).toEqual([{ ...quad, maxNodes: 1, spot: false }]);
    expect(loadTenants({ tenants: [{ tenantId: 'acme', region: 'eu-west-1', gpu: { instanceTypes: ['g6e.xlarge'], maxVcpus: 8 } }] })[0]!.gpuLanes).toEqual([]);
  });

  it.each([
    [[quad, quad], "tenants[0].gpuLanes[1].name: duplicates lane 'quad'"],
    [[{ ...p5, maxVcpus: 400 }], 'tenants[0].gpuLanes[0].maxVcpus: jobVcpus × maxNodes must not exceed maxVcpus'],
    [[{ ...quad, name: 'Quad lane' }], 'tenants[0].gpuLanes[0].name: must be 1-16 lowercase letters or digits'],
    [[{ ...quad, gpusPerNode: 0 }], 'tenants[0].gpuLanes[0].gpusPerNode: must be at least 1'],
    [[{ ...quad, instanceTypes: ['big'] }], 'tenants[0].gpuLanes[0].instanceTypes[0]: must be an EC2 instance type'],
  ])('refuses %j with the field and the reason', (lanes, problem) => {
    expect(() => loadTenants(tenant(lanes))).toThrow(problem);
  });
});
