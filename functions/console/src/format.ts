import type { Message } from './types.ts';

/** A message's text; structured content (parts, tool calls) shows as JSON. */
export function messageText(content: unknown): string {
  if (content === null || content === undefined) return '';
  return typeof content === 'string' ? content : JSON.stringify(content);
}

/** The question a stimulus asks: its last user turn. */
export function lastUserTurn(messages: Message[] | undefined): string {
  const last = [...(messages ?? [])].reverse().find((message) => message.role === 'user');
  return messageText(last?.content);
}

export const plural = (count: number, word: string) => `${count.toLocaleString('en')} ${word}${count === 1 ? '' : 's'}`;
