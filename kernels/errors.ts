/**
 * One error type for every problem caused by the user's input (a file, a flag, a DSL mistake, a device
 * limit). The CLI prints `rwkvc: <message>` on one line and exits with `exitCode` (2); anything else
 * is a bug in rwkvc and keeps its stack trace.
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** `file: tensor: problem` in one line, the shape every reader's message takes. */
export function inputError(file: string, what: string | undefined, problem: string): UserError {
  return new UserError(what ? `${file}: ${what}: ${problem}` : `${file}: ${problem}`);
}
