/**
 * Which GPU lane, and how many of its nodes, a bake runs on (AWS: tenant `gpuLanes`). The
 * cheapest placement its estimated memory fits: fewest GPU-gigabytes reserved, then the lane
 * listed first. A bake that fits nowhere goes to the largest placement there is: the engine's plan
 * may still make it fit with CPU offload, or fails with a sentence naming what it needs.
 */
import type { BakeMemory } from './bake-memory.ts';

export interface GpuLaneShape {
  gpusPerNode: number;
  gpuMemoryGiB: number;
  maxNodes: number;
}

export interface LanePlacement<Lane extends GpuLaneShape> {
  lane: Lane;
  nodes: number;
}

/**
 * `lanes[0]` is the default lane; a bake of unknown size (`memory` undefined) stays there, as
 * does everything when it is the only lane.
 */
export function chooseBakeLane<Lane extends GpuLaneShape>(memory: BakeMemory | undefined, lanes: readonly Lane[]): LanePlacement<Lane> {
  const [first] = lanes;
  if (!first) throw new TypeError('chooseBakeLane needs at least one lane');
  if (!memory) return { lane: first, nodes: 1 };

  let cheapest: { placement: LanePlacement<Lane>; gib: number } | undefined;
  let largest: { placement: LanePlacement<Lane>; gib: number } | undefined;
  for (const lane of lanes) {
    for (let nodes = 1; nodes <= lane.maxNodes; nodes++) {
      const gpus = nodes * lane.gpusPerNode;
      const gib = gpus * lane.gpuMemoryGiB;
      if (!largest || gib > largest.gib) largest = { placement: { lane, nodes }, gib };
      if (memory(gpus) <= lane.gpuMemoryGiB && (!cheapest || gib < cheapest.gib)) {
        cheapest = { placement: { lane, nodes }, gib };
      }
    }
  }
  return (cheapest ?? largest!).placement;
}
