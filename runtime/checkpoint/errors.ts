/**
 * `inputError` of ../errors.ts with every part forced onto one line. Tensor and entry names come from
 * the file itself, and a corrupt (or hostile) one may hold newlines or terminal control characters.
 */
import { inputError as baseInputError, type UserError } from '../../kernels/errors.ts';

const oneLine = (s: string) =>
  s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function inputError(file: string, what: string | undefined, problem: string): UserError {
  return baseInputError(oneLine(file), what === undefined ? undefined : oneLine(what), oneLine(problem));
}
