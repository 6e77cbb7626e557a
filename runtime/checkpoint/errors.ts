/**
 * `inputError` of ../errors.ts with every part forced onto one line and bounded. Tensor and entry names
 * come from the file itself, and a corrupt (or hostile) one may hold newlines, terminal control
 * characters or megabytes of text: each quoted part is clipped, so a message stays one short line.
 */
import { clip, inputError as baseInputError, oneLine, type UserError } from '../../kernels/errors.ts';

/** The file name is the user's (a path they typed), so it is kept whole; names and problems are clipped. */
export function inputError(file: string, what: string | undefined, problem: string): UserError {
  return baseInputError(oneLine(file), what === undefined ? undefined : clip(oneLine(what), 200), clip(oneLine(problem), 600));
}

/**
 * A value from a file (JSON or pickle) as short text for a message: depth- and length-bounded and never
 * recursive beyond `depth`, so neither a deeply nested value nor a huge one can overflow the stack or
 * the line. Cycles (a pickle list appended to itself) end at the depth bound like anything else.
 */
export function describeValue(v: unknown, max = 200): string {
  let out = '';
  const put = (s: string) => {
    if (out.length <= max) out += s;
  };
  // Children are visited lazily (a list may hold millions) and each key or item one level deeper.
  function* indexed(xs: Iterable<unknown>): Iterable<[unknown, unknown]> {
    for (const e of xs) yield [undefined, e];
  }
  const walk = (x: unknown, depth: number): void => {
    if (out.length > max) return;
    if (typeof x === 'string') return put(JSON.stringify(x.length > max ? x.slice(0, max) : x));
    if (typeof x !== 'object' || x === null) return put(String(x));
    let open = '{', close = '}', entries: Iterable<[unknown, unknown]>;
    if (Array.isArray(x)) {
      [open, close] = ['[', ']'];
      entries = indexed(x);
    } else if (x instanceof Map) {
      entries = x.entries();
    } else if (Array.isArray((x as { items?: unknown }).items)) {
      [open, close] = ['(', ')']; // a pickle tuple
      entries = indexed((x as { items: unknown[] }).items);
    } else if (Object.getPrototypeOf(x) === Object.prototype) {
      entries = Object.entries(x);
    } else {
      return put(`<${(x as object).constructor?.name ?? 'object'}>`);
    }
    if (depth >= 4) return put(`${open}…${close}`);
    put(open);
    let i = 0;
    for (const [k, e] of entries) {
      if (out.length > max) break;
      if (i++) put(', ');
      if (k !== undefined) {
        walk(k, depth + 1);
        put(': ');
      }
      walk(e, depth + 1);
    }
    put(close);
  };
  walk(v, 0);
  return clip(out, max);
}

/** Neither a .pth ZIP nor safetensors; `looksLike` names what the magic bytes say it is, when known. */
export function unsupportedFormat(file: string, looksLike?: string): UserError {
  return inputError(file, undefined, `not a supported format (expected a .pth ZIP or safetensors)${looksLike ? `; this looks like ${looksLike}` : ''}`);
}
