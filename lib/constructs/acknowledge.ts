import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * Records, on the grantee's default policy, why a wildcard that a grant just added is there
 * (cdk-nag AwsSolutions-IAM5 for exactly `appliesTo`, a finding or a `/regex/` for findings whose
 * text depends on whether the stack's account and region are known). Call it right after the
 * grant, so that the reason sits next to the permission it explains.
 */
export function acknowledgeWildcard(grantee: IGrantable, appliesTo: string | { regex: string }, reason: string): void {
  const principal = grantee.grantPrincipal as Partial<IConstruct>;
  const policy = principal.node?.tryFindChild('DefaultPolicy');
  if (!policy) throw new Error(`acknowledgeWildcard: ${String(principal)} has no default policy to annotate`);
  NagSuppressions.addResourceSuppressions(policy, [{ id: 'AwsSolutions-IAM5', reason, appliesTo: [appliesTo] }]);
}
