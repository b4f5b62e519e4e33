import { useState } from 'preact/hooks';
import { Api, apiPath } from '../api.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { PageTitle } from '../components/PageTitle.tsx';

/** Asks for an API key and checks it with a call every key may make (listing its repos). */
export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const candidate = key.trim();
    if (!candidate) {
      setError('Enter your API key: `npm start` prints one, and your administrator can create more.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await new Api(candidate).get(apiPath('/v1/repo'));
      onSignedIn(candidate);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in" id="main">
      <PageTitle title="Sign in to Bakehouse" />
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          value={key}
          onInput={(event) => setKey(event.currentTarget.value)}
          aria-describedby="api-key-help"
        />
        <p id="api-key-help" class="muted">
          Kept in this browser tab only, until you sign out or close the tab.
        </p>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  );
}
