import { useMemo, useState } from 'preact/hooks';
import { Api, type ApiError } from './api.ts';
import { ApiContext } from './context.ts';
import { Layout } from './Layout.tsx';
import { clearKey, storedKey, storeKey } from './session.ts';
import { SignIn } from './pages/SignIn.tsx';

/** Signed in (a key in this tab's session) or the sign-in form; a 401 later signs out with its reason. */
export function App() {
  const [key, setKey] = useState<string | null>(storedKey);
  const [signedOutBecause, setSignedOutBecause] = useState<string | null>(null);

  const signOut = (reason: string | null = null) => {
    clearKey();
    setKey(null);
    setSignedOutBecause(reason);
  };
  const api = useMemo(() => (key ? new Api(key, (error: ApiError) => signOut(error.message)) : null), [key]);

  if (!api) {
    return (
      <SignIn
        notice={signedOutBecause}
        onSignedIn={(accepted) => {
          storeKey(accepted);
          setSignedOutBecause(null);
          setKey(accepted);
        }}
      />
    );
  }
  return (
    <ApiContext.Provider value={api}>
      <Layout onSignOut={() => signOut()} />
    </ApiContext.Provider>
  );
}
