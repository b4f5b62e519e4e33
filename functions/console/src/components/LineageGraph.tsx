import { href } from '../router.ts';
import type { RepoTree } from '../types.ts';

const NODE_W = 200;
const NODE_H = 74;
const GAP_X = 24;
const GAP_Y = 44;
const BASE = '';

interface Placed {
  id: string;
  x: number;
  y: number;
}

const shorten = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * Each bake's parent: the same-repo bake the tree's edges name, else the repo's base model (a
 * parent in another repo, or none, starts from weights this repo does not show).
 */
function parentsOf(tree: RepoTree): Map<string, string> {
  const parents = new Map<string, string>(Object.keys(tree.bakes).map((bake) => [bake, BASE]));
  for (const [, child, , parent] of tree.edges) if (child in tree.bakes && parent in tree.bakes) parents.set(child, parent);
  return parents;
}

/** Rows by distance from the base model, each row in name order. */
function layout(tree: RepoTree): { placed: Map<string, Placed>; parents: Map<string, string>; width: number; height: number } {
  const parents = parentsOf(tree);
  const depth = new Map<string, number>([[BASE, 0]]);
  const depthOf = (bake: string, seen = new Set<string>()): number => {
    const known = depth.get(bake);
    if (known !== undefined) return known;
    const parent = parents.get(bake) ?? BASE;
    // A cycle cannot come from the API, but a drawing must not loop if one did.
    const value = seen.has(bake) ? 1 : depthOf(parent, seen.add(bake)) + 1;
    depth.set(bake, value);
    return value;
  };
  const rows: string[][] = [[BASE]];
  for (const bake of Object.keys(tree.bakes).sort()) (rows[depthOf(bake)] ??= []).push(bake);
  const widest = Math.max(...rows.map((row) => row?.length ?? 0));
  const width = widest * NODE_W + (widest - 1) * GAP_X;
  const placed = new Map<string, Placed>();
  rows.forEach((row = [], level) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    row.forEach((id, index) => placed.set(id, { id, x: (width - rowWidth) / 2 + index * (NODE_W + GAP_X), y: level * (NODE_H + GAP_Y) }));
  });
  return { placed, parents, width, height: rows.length * NODE_H + (rows.length - 1) * GAP_Y };
}

/** The repo's bakes as a tree from its base model: each node a link with status and checkpoints. */
export function LineageGraph({ repo, tree }: { repo: string; tree: RepoTree }) {
  const { placed, parents, width, height } = layout(tree);
  const base = placed.get(BASE)!;
  return (
    <div class="graph-wrap">
      <svg class="lineage" width={width + 2} height={height + 2} viewBox={`-1 -1 ${width + 2} ${height + 2}`} role="group" aria-label={`Lineage of the bakes in ${repo}`}>
        {[...parents].map(([child, parent]) => {
          const from = placed.get(parent)!;
          const to = placed.get(child)!;
          const x1 = from.x + NODE_W / 2;
          const y1 = from.y + NODE_H;
          const x2 = to.x + NODE_W / 2;
          const y2 = to.y;
          const mid = (y1 + y2) / 2;
          return <path key={`${child}-edge`} class="edge" d={`M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`} aria-hidden="true" />;
        })}
        <g class="node base" aria-label={`Base model ${tree.base_model}`} role="img">
          <rect x={base.x} y={base.y} width={NODE_W} height={NODE_H} rx={8} />
          <text x={base.x + 10} y={base.y + 22}>
            base model
          </text>
          <text x={base.x + 10} y={base.y + 42} class="detail">
            {shorten(tree.base_model, 30)}
          </text>
        </g>
        {Object.entries(tree.bakes).map(([bake, node]) => {
          const at = placed.get(bake)!;
          const checkpoints = node.checkpoints ?? [];
          const detail = checkpoints.length ? `${checkpoints.length} checkpoint${checkpoints.length > 1 ? 's' : ''}, latest ${checkpoints[0]}` : 'no checkpoints';
          return (
            // Named by its visible text (name, status, checkpoints); a shortened name keeps its full form as a tooltip.
            <a key={bake} href={href(['repos', repo, 'bakes', bake])} class={`node bake status-${node.status}`} data-bake={bake}>
              {bake.length > 24 ? <title>{bake}</title> : null}
              <rect x={at.x} y={at.y} width={NODE_W} height={NODE_H} rx={8} />
              <text x={at.x + 10} y={at.y + 22} class="name">
                {shorten(bake, 24)}
              </text>
              <text x={at.x + 10} y={at.y + 42} class="detail">
                {node.status}
              </text>
              <text x={at.x + 10} y={at.y + 60} class="detail">
                {detail}
              </text>
            </a>
          );
        })}
      </svg>
    </div>
  );
}
