import { href } from '../router.ts';

/**
 * "Template: …" for a target or bake: the built-in `default` as plain text, another resource of
 * the repo as a link to its page. Nothing for resources made before templates were recorded.
 */
export function TemplateOrigin({ repo, kind, template }: { repo: string; kind: 'targets' | 'bakes'; template: string | undefined }) {
  if (!template) return null;
  return (
    <p>
      Template: {template === 'default' ? <code>default</code> : <a href={href(['repos', repo, kind, template])}>{template}</a>}
    </p>
  );
}
