import { useEffect, useRef, useState } from 'preact/hooks';
import { apiPath, isAbort } from '../api.ts';
import { streamChat } from '../chat-stream.ts';
import { ErrorNote } from '../components/ErrorNote.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { useApi } from '../context.ts';
import { useLoad } from '../load.ts';
import type { Message, Model } from '../types.ts';

interface Turn {
  user: string;
  reply: string;
  error: string | null;
  done: boolean;
}

interface PaneSettings {
  model: string;
  system: string;
}

/**
 * Chat with a base model or any checkpoint, optionally beside a second one (say the base model
 * with the prompt against the baked checkpoint without it): one message goes to both, and each
 * side keeps its own conversation and streams its own reply.
 */
export function ChatPage({ model }: { model: string | null }) {
  const models = useLoad((api, signal) => api.get<{ data: Model[] }>(apiPath('/v1/models'), { signal }), []);
  const [compare, setCompare] = useState(false);
  const [panes, setPanes] = useState<PaneSettings[]>([
    { model: model ?? '', system: '' },
    { model: '', system: '' },
  ]);
  const [turns, setTurns] = useState<Turn[][]>([[], []]);
  const [draft, setDraft] = useState('');
  const streams = useRef<AbortController | null>(null);
  const ids = models.data?.data.map((entry) => entry.id) ?? [];

  // Until chosen, a pane talks to the model the link named, else the first one listed.
  useEffect(() => {
    if (!ids.length) return;
    setPanes((current) => current.map((pane, index) => (pane.model ? pane : { ...pane, model: index === 0 ? (model ?? ids[0]!) : ids[0]! })));
  }, [models.data, model]);
  useEffect(() => () => streams.current?.abort(), []);

  const active = compare ? [0, 1] : [0];
  const busy = turns.some((side) => side.some((turn) => !turn.done));
  const api = useApi();

  const update = (side: number, change: (turn: Turn) => Turn) =>
    setTurns((all) => all.map((list, index) => (index === side ? [...list.slice(0, -1), change(list.at(-1)!)] : list)));

  const send = (event: Event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || busy) return;
    setDraft('');
    const controller = new AbortController();
    streams.current = controller;
    for (const side of active) {
      const pane = panes[side]!;
      const history = turns[side]!.filter((turn) => turn.done && !turn.error);
      const messages: Message[] = [
        ...(pane.system.trim() ? [{ role: 'system', content: pane.system.trim() }] : []),
        ...history.flatMap((turn) => [
          { role: 'user', content: turn.user },
          { role: 'assistant', content: turn.reply },
        ]),
        { role: 'user', content: text },
      ];
      setTurns((all) => all.map((list, index) => (index === side ? [...list, { user: text, reply: '', error: null, done: false }] : list)));
      void (async () => {
        try {
          for await (const piece of streamChat(api, pane.model, messages, controller.signal)) update(side, (turn) => ({ ...turn, reply: turn.reply + piece }));
          update(side, (turn) => ({ ...turn, done: true }));
        } catch (failure) {
          const stopped = isAbort(failure) || controller.signal.aborted;
          update(side, (turn) => ({ ...turn, done: true, error: stopped ? 'Stopped.' : failure instanceof Error ? failure.message : String(failure) }));
        }
      })();
    }
  };

  return (
    <>
      <PageTitle title="Chat" />
      <ErrorNote error={models.error} />
      <label class="check">
        <input type="checkbox" checked={compare} onChange={(event) => setCompare(event.currentTarget.checked)} /> Compare with a second model
      </label>
      <div class={compare ? 'panes two' : 'panes'}>
        {active.map((side) => (
          <ChatPane
            key={side}
            side={side}
            models={ids}
            settings={panes[side]!}
            onSettings={(settings) => setPanes((all) => all.map((pane, index) => (index === side ? settings : pane)))}
            turns={turns[side]!}
            onClear={() => setTurns((all) => all.map((list, index) => (index === side ? [] : list)))}
          />
        ))}
      </div>
      <form class="composer" onSubmit={send}>
        <label for="chat-message">Message</label>
        <textarea
          id="chat-message"
          rows={2}
          value={draft}
          onInput={(event) => setDraft(event.currentTarget.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey) send(event);
          }}
        />
        <div class="actions">
          <button type="submit" disabled={busy || !draft.trim() || !panes[0]!.model}>
            Send
          </button>
          <button type="button" class="secondary" disabled={!busy} onClick={() => streams.current?.abort()}>
            Stop
          </button>
        </div>
      </form>
    </>
  );
}

interface ChatPaneProps {
  side: number;
  models: string[];
  settings: PaneSettings;
  onSettings: (settings: PaneSettings) => void;
  turns: Turn[];
  onClear: () => void;
}

function ChatPane({ side, models, settings, onSettings, turns, onClear }: ChatPaneProps) {
  const name = side === 0 ? 'A' : 'B';
  return (
    <section class="pane" aria-label={`Conversation ${name}`} data-pane={name}>
      <label for={`model-${name}`}>Model {name}</label>
      <select id={`model-${name}`} value={settings.model} onChange={(event) => onSettings({ ...settings, model: event.currentTarget.value })}>
        {settings.model && !models.includes(settings.model) ? <option value={settings.model}>{settings.model}</option> : null}
        {models.map((model) => (
          <option key={model} value={model}>
            {model}
          </option>
        ))}
      </select>
      <label for={`system-${name}`}>System prompt (optional)</label>
      <textarea id={`system-${name}`} rows={2} value={settings.system} onInput={(event) => onSettings({ ...settings, system: event.currentTarget.value })} />
      <ol class="transcript" aria-live="polite">
        {turns.map((turn, index) => (
          <li key={index}>
            <p class="user">
              <span class="role">you</span> {turn.user}
            </p>
            <p class="assistant" aria-busy={!turn.done}>
              <span class="role">{settings.model.split('/').slice(-2).join('/') || 'model'}</span> {turn.reply}
              {turn.done ? null : <span class="muted"> …</span>}
            </p>
            <ErrorNote error={turn.error} />
          </li>
        ))}
      </ol>
      {turns.length ? (
        <button type="button" class="secondary" onClick={onClear}>
          Clear conversation {name}
        </button>
      ) : null}
    </section>
  );
}
