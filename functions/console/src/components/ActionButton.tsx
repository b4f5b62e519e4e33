import { useState } from 'preact/hooks';

/**
 * A button that starts something on the server: disabled while the call is under way (so a
 * double click sends one request), and the API's sentence beside it when the call fails.
 */
export function ActionButton({ label, run, disabled = false }: { label: string; run: () => Promise<unknown>; disabled?: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const click = async () => {
    setBusy(true);
    setError(null);
    try {
      await run();
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" onClick={click} disabled={disabled || busy} aria-busy={busy}>
        {label}
      </button>
      {error ? (
        <span class="error" role="alert">
          {error}
        </span>
      ) : null}
    </span>
  );
}
