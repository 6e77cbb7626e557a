/**
 * One error type for every problem caused by the user's input (a file, a flag, a DSL mistake, a device
 * limit). The CLI prints `rwkvc: <message>` on one line and exits with `exitCode` (2); anything else
 * is a bug in rwkvc and keeps its stack trace.
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(oneLine(message)); // input quoted in a message may hold newlines or terminal controls
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** `file: tensor: problem` in one line, the shape every reader's message takes. */
export function inputError(file: string, what: string | undefined, problem: string): UserError {
  return new UserError(what ? `${file}: ${what}: ${problem}` : `${file}: ${problem}`);
}

/**
 * A mistake of rwkvc itself (a pass that broke the IR, a plan a target cannot have been given): it says
 * so, keeps its stack trace, and the CLI exits 1 asking for a report, never blaming the user's input.
 */
export class CompilerBug extends Error {
  constructor(message: string) {
    super(`rwkvc compiler bug: ${message} (please report it with the command that showed it)`);
    this.name = 'CompilerBug';
  }
}

/** Control characters (newlines, escapes, line separators) written as \\uXXXX: a message stays one line. */
export const oneLine = (s: string): string =>
  s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * `s` cut to at most `max` characters (an ellipsis marks the cut): for quoting input (a name, a value
 * from a file) in a message, so that one hostile value cannot make an error line megabytes long.
 */
export function clip(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
