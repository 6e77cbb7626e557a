/**
 * The RWKV World chat format: turns `User: …`, `Assistant: …` (and `System: …`) separated by a blank
 * line, the prompt ending in `Assistant:`; the model ends its turn with `\n\n`. A blank line inside a
 * message would read as a turn end, so messages are cut to single newlines (as ChatRWKV does).
 */

/** Where the World models end a reply. */
export const TURN_END = '\n\n';

/** A message's text as it goes into the prompt: CRLF as LF, no blank lines, no outer whitespace. */
function cleanMessage(text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(/\n{2,}/g, '\n').trim();
}

/** One user turn, ready for the reply: `User: <text>\n\nAssistant:`. */
export function userTurn(text: string): string {
  return `User: ${cleanMessage(text)}${TURN_END}Assistant:`;
}

export type Role = 'system' | 'developer' | 'user' | 'assistant';

const SPEAKER: Record<Role, string> = { system: 'System', developer: 'System', user: 'User', assistant: 'Assistant' };

/** A whole conversation as one prompt, ending with `Assistant:` for the reply. */
export function chatPrompt(messages: { role: Role; text: string }[]): string {
  return messages.map((m) => `${SPEAKER[m.role]}: ${cleanMessage(m.text)}${TURN_END}`).join('') + 'Assistant:';
}
