import { useEffect, useRef, useState } from 'preact/hooks';
import { apiPath } from '../api.ts';
import { lastUserTurn, messageText } from '../format.ts';
import { useLoad } from '../load.ts';
import type { Message, OutputLine, OutputPage } from '../types.ts';
import { ErrorNote } from './ErrorNote.tsx';

const PAGE_SIZES = [25, 100, 1000];

export interface OutputPagerProps {
  repo: string;
  target: string;
  kind: 'stim' | 'rollout';
  /** Lines written so far (the job status's `lines`, which the page polls while the job runs). */
  lines: number;
}

/**
 * One page of a job's output at a time, fetched by offset from the API (which reads it by its
 * line index), so a million-line output costs what a ten-line one does.
 */
export function OutputPager({ repo, target, kind, lines }: OutputPagerProps) {
  const [offset, setOffset] = useState(0);
  const [size, setSize] = useState(PAGE_SIZES[0]!);
  const [jump, setJump] = useState('');
  const page = useLoad(
    (api, signal) => api.get<OutputPage<OutputLine>>(`${apiPath('/v1/repo', repo, 'targets', target, kind)}/output`, { query: { offset, limit: size }, signal }),
    [repo, target, kind, offset, size],
  );
  // Asked again whenever the job has written more of the lines this page shows; the lines already
  // shown stay until the longer answer arrives. (Another page or size is asked for anyway.)
  const pageKey = `${offset}:${size}`;
  const written = Math.min(lines, offset + size);
  const seen = useRef({ pageKey, written });
  const { reload } = page;
  useEffect(() => {
    const before = seen.current;
    seen.current = { pageKey, written };
    if (before.pageKey === pageKey && before.written !== written) reload();
  }, [pageKey, written, reload]);
  const last = Math.max(0, Math.floor((lines - 1) / size) * size);
  const go = (to: number) => setOffset(Math.min(Math.max(0, to), last));
  // Until the answer for this offset and size arrives, the last one describes other lines: show none of it.
  const current = page.data && page.data.offset === offset && page.data.limit === size ? page.data : undefined;
  const shown = current?.output ?? [];
  const label = kind === 'stim' ? 'Stimuli' : 'Trajectories';

  return (
    <section class="pager" aria-label={`${label} output`}>
      <div class="pager-controls">
        <button type="button" onClick={() => go(0)} disabled={offset === 0}>
          First
        </button>
        <button type="button" onClick={() => go(offset - size)} disabled={offset === 0}>
          Previous
        </button>
        <button type="button" onClick={() => go(offset + size)} disabled={offset + size >= lines}>
          Next
        </button>
        <button type="button" onClick={() => go(last)} disabled={offset >= last}>
          Last
        </button>
        <form
          class="inline"
          onSubmit={(event) => {
            event.preventDefault();
            const line = Number(jump);
            if (Number.isInteger(line) && line >= 1) go(Math.floor((line - 1) / size) * size);
          }}
        >
          <label for={`${kind}-jump`}>Go to line</label>
          <input id={`${kind}-jump`} type="number" min={1} max={Math.max(1, lines)} value={jump} onInput={(event) => setJump(event.currentTarget.value)} />
          <button type="submit">Go</button>
        </form>
        <label for={`${kind}-size`}>Per page</label>
        <select
          id={`${kind}-size`}
          value={size}
          onChange={(event) => {
            const next = Number(event.currentTarget.value);
            setSize(next);
            setOffset(Math.floor(offset / next) * next);
          }}
        >
          {PAGE_SIZES.map((choice) => (
            <option key={choice} value={choice}>
              {choice}
            </option>
          ))}
        </select>
      </div>
      <p class="muted" aria-live="polite">
        {lines === 0
          ? 'No output yet.'
          : current
            ? `Lines ${(offset + 1).toLocaleString('en')}–${(offset + shown.length).toLocaleString('en')} of ${lines.toLocaleString('en')}${page.loading ? ' (updating…)' : ''}`
            : `Loading from line ${(offset + 1).toLocaleString('en')} of ${lines.toLocaleString('en')}…`}
      </p>
      <ErrorNote error={page.error} />
      {shown.length ? (
        <div class="table-wrap">
          <table class="output" data-offset={offset}>
            <caption class="visually-hidden">{`${label} from line ${offset + 1}`}</caption>
            <thead>
              <tr>
                <th scope="col">Line</th>
                <th scope="col">Teacher context</th>
                <th scope="col">{kind === 'stim' ? 'Student context' : 'Response'}</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((line, index) => (
                <tr key={offset + index}>
                  <th scope="row">
                    {(offset + index + 1).toLocaleString('en')}
                    <div class="muted ids">
                      stimulus {line.stimulus_id ?? '–'}
                      {kind === 'rollout' ? `, trajectory ${line.trajectory_id ?? '–'}` : ''}
                    </div>
                  </th>
                  <td>
                    <Context messages={line.unconditioned_stimulus?.messages} />
                  </td>
                  <td>{kind === 'stim' ? <Context messages={line.conditioned_stimulus?.messages} /> : <div class="response">{line.response ?? ''}</div>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

/** The question, with the whole conversation before it folded underneath. */
function Context({ messages }: { messages: Message[] | undefined }) {
  if (!messages?.length) return <span class="muted">none</span>;
  return (
    <details>
      <summary>{lastUserTurn(messages) || `${messages.length} messages`}</summary>
      <ol class="messages">
        {messages.map((message, index) => (
          <li key={index}>
            <span class="role">{message.role}</span> {messageText(message.content)}
          </li>
        ))}
      </ol>
    </details>
  );
}
