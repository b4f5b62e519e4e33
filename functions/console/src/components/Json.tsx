/** A configuration as indented JSON, folded away until asked for. */
export function JsonBlock({ summary, value, open = false }: { summary: string; value: unknown; open?: boolean }) {
  return (
    <details open={open}>
      <summary>{summary}</summary>
      <pre class="json">{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}
