import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';

/** The page's one heading (focused on navigation, so screen readers announce it) and the tab title. */
export function PageTitle({ title, children }: { title: string; children?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · Bakehouse`;
  }, [title]);
  return <h1 tabIndex={-1}>{children ?? title}</h1>;
}
