/**
 * A pickle *data parser*, not an unpickler: it builds an inert tree of values and never calls, imports or
 * constructs anything. GLOBAL names go through a caller-supplied allow-list (anything else is refused by
 * name), REDUCE only records "fn(args)", and only the opcodes a torch.save state dict uses are accepted.
 * Every loop advances through the input, so no input can make it hang, and values nest at most
 * MAX_DEPTH deep, so nothing that walks them (a message describing one) can overflow the stack.
 */
import { inputError } from './errors.ts';
import { latin1, le } from './source.ts';

export class PGlobal {
  constructor(readonly module: string, readonly name: string) {}
}
export class PTuple {
  constructor(readonly items: PValue[]) {}
}
/** `fn(*args)`, recorded, not called. */
export class PReduce {
  constructor(readonly fn: PValue, readonly args: PTuple) {}
}
/** A persistent id: torch uses these to refer to tensor storages kept outside the pickle. */
export class PPersistent {
  constructor(readonly pid: PValue) {}
}
export type PValue =
  | null | boolean | number | bigint | string
  | PValue[] | Map<PValue, PValue> | PTuple | PGlobal | PReduce | PPersistent;

/** Opcodes we know but deliberately do not accept, named so that the refusal is readable. */
const REFUSED: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x50: 'PERSID', 0x49: 'INT', 0x4c: 'LONG', 0x8b: 'LONG4', 0x53: 'STRING', 0x56: 'UNICODE', 0x46: 'FLOAT',
  0x67: 'GET', 0x70: 'PUT', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8', 0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
};

/** A state dict nests about 6 deep (dict → REDUCE → args → persistent id → tuple); far more is hostile. */
export const MAX_DEPTH = 100;
/**
 * Memory is bounded too: a state dict makes ~15 values per tensor, so a million (each at most a few
 * hundred bytes in memory) is far beyond any real checkpoint, while a pickle of nothing but EMPTY_DICT
 * opcodes would otherwise turn each of its bytes into a Map (a 256 MiB pickle, ~50 GB).
 */
export const MAX_VALUES = 1_000_000;
export const MAX_STACK = 4_000_000;
/** Opcodes that allocate something (a container, a string, a memo entry): each counts against MAX_VALUES. */
const ALLOCATING = new Set([0x5d, 0x7d, 0x29, 0x74, 0x85, 0x86, 0x87, 0x6c, 0x64, 0x52, 0x51, 0x63, 0x93, 0x8a, 0x58, 0x8c, 0x8d, 0x71, 0x72, 0x94]);

export function parsePickle(
  data: Uint8Array,
  allowGlobal: (module: string, name: string) => boolean,
  file: string,
  what: string,
): PValue {
  const buf = data;
  const dv = le(data);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: PValue[] = [];
  const marks: number[] = []; // stack heights at each MARK
  const memo = new Map<number, PValue>();
  let pos = 0;
  let opAt = 0;
  // Nesting depth of each container built (scalars are 0, an empty container 1), kept as containers
  // are built and filled. A container filled after being nested elsewhere (through the memo) does not
  // update its parents, so this bounds honest construction; describeValue is depth-bounded regardless.
  const depths = new WeakMap<object, number>();
  const depthOf = (v: PValue) => (typeof v === 'object' && v !== null ? depths.get(v) ?? 1 : 0);
  const nested = <T extends object>(container: T, children: Iterable<PValue>, atLeast = 1): T => {
    let d = atLeast;
    for (const c of children) d = Math.max(d, 1 + depthOf(c));
    if (d > MAX_DEPTH) throw bad(`malformed pickle: values nested more than ${MAX_DEPTH} deep`);
    depths.set(container, d);
    return container;
  };
  const grow = <T extends object>(container: T, children: Iterable<PValue>): T =>
    nested(container, children, depthOf(container as PValue));

  const bad = (problem: string) => inputError(file, what, `${problem} (pickle byte ${opAt})`);
  const need = (n: number) => {
    if (pos + n > buf.length) throw bad('truncated pickle');
    const at = pos;
    pos += n;
    return at;
  };
  const top = () => {
    if (stack.length <= (marks.at(-1) ?? 0)) throw bad('malformed pickle: stack underflow');
    return stack[stack.length - 1]!;
  };
  const pop = () => (top(), stack.pop()!);
  const popToMark = () => {
    const m = marks.pop();
    if (m === undefined) throw bad('malformed pickle: no MARK');
    return stack.splice(m);
  };
  const str = (n: number) => {
    const at = need(n);
    try {
      return utf8.decode(buf.subarray(at, at + n));
    } catch {
      throw bad('malformed pickle: invalid UTF-8 string');
    }
  };
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) throw bad('truncated pickle');
    const s = latin1(buf.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const global = (module: string, name: string) => {
    if (!allowGlobal(module, name)) throw bad(`refusing pickle global ${module}.${name}`);
    return new PGlobal(module, name);
  };
  const dictOf = (v: PValue) => {
    if (!(v instanceof Map)) throw bad('malformed pickle: SETITEM on a non-dict');
    return v;
  };
  const listOf = (v: PValue) => {
    if (!Array.isArray(v)) throw bad('malformed pickle: APPEND on a non-list');
    return v;
  };
  const get = (k: number) => {
    if (!memo.has(k)) throw bad(`malformed pickle: memo entry ${k} missing`);
    return memo.get(k)!;
  };

  let made = 0;
  while (pos < buf.length) {
    opAt = pos;
    const op = buf[pos++]!;
    if (ALLOCATING.has(op) && ++made > MAX_VALUES) throw bad(`malformed pickle: more than ${MAX_VALUES} values (a state dict makes a few per tensor)`);
    if (stack.length + marks.length > MAX_STACK) throw bad(`malformed pickle: more than ${MAX_STACK} values on the stack`);
    switch (op) {
      case 0x80: need(1); break; // PROTO: any version; unknown opcodes are refused anyway
      case 0x95: need(8); break; // FRAME: only a read-ahead hint
      case 0x2e: return pop(); // STOP
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(buf[need(1)]!); break; // BININT1
      case 0x4d: stack.push(dv.getUint16(need(2), true)); break; // BININT2
      case 0x4a: stack.push(dv.getInt32(need(4), true)); break; // BININT
      case 0x47: stack.push(dv.getFloat64(need(8), false)); break; // BINFLOAT
      case 0x8a: { // LONG1: little-endian two's complement of n bytes
        const n = buf[need(1)]!;
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[at + i]!);
        if (n > 0 && buf[at + n - 1]! >= 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x58: stack.push(str(dv.getUint32(need(4), true))); break; // BINUNICODE
      case 0x8c: stack.push(str(buf[need(1)]!)); break; // SHORT_BINUNICODE
      case 0x8d: { // BINUNICODE8
        const n = dv.getBigUint64(need(8), true);
        if (n > BigInt(buf.length)) throw bad('truncated pickle');
        stack.push(str(Number(n)));
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw bad('malformed pickle: STACK_GLOBAL needs two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x29: stack.push(new PTuple([])); break; // EMPTY_TUPLE
      case 0x74: { const items = popToMark(); stack.push(nested(new PTuple(items), items)); break; } // TUPLE
      case 0x85: case 0x86: case 0x87: { // TUPLE1..3
        const items = Array.from({ length: op - 0x84 }, pop).reverse();
        stack.push(nested(new PTuple(items), items));
        break;
      }
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { const items = popToMark(); stack.push(nested(items, items)); break; } // LIST
      case 0x61: { const v = pop(); grow(listOf(top()), [v]).push(v); break; } // APPEND
      case 0x65: { const vs = popToMark(); const l = grow(listOf(top()), vs); for (const v of vs) l.push(v); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const kv = popToMark();
        if (kv.length % 2) throw bad('malformed pickle: odd DICT');
        const d = new Map<PValue, PValue>();
        for (let i = 0; i < kv.length; i += 2) d.set(kv[i]!, kv[i + 1]!);
        stack.push(nested(d, kv));
        break;
      }
      case 0x73: { const v = pop(), k = pop(); grow(dictOf(top()), [k, v]).set(k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const kv = popToMark();
        if (kv.length % 2) throw bad('malformed pickle: odd SETITEMS');
        const d = grow(dictOf(top()), kv);
        for (let i = 0; i < kv.length; i += 2) d.set(kv[i]!, kv[i + 1]!);
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        if (!(args instanceof PTuple)) throw bad('malformed pickle: REDUCE arguments are not a tuple');
        // OrderedDict() is the one call whose result later opcodes modify (SETITEMS): make it a real dict.
        const isDict = fn instanceof PGlobal && fn.module === 'collections' && fn.name === 'OrderedDict';
        stack.push(isDict && args.items.length === 0 ? new Map() : nested(new PReduce(fn, args), [fn, args]));
        break;
      }
      case 0x62: pop(); top(); break; // BUILD: sets attributes (OrderedDict._metadata); nothing we need
      case 0x51: { const pid = pop(); stack.push(nested(new PPersistent(pid), [pid])); break; } // BINPERSID
      case 0x71: memo.set(buf[need(1)]!, top()); break; // BINPUT
      case 0x72: memo.set(dv.getUint32(need(4), true), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(get(buf[need(1)]!)); break; // BINGET
      case 0x6a: stack.push(get(dv.getUint32(need(4), true))); break; // LONG_BINGET
      default: {
        const hex = `0x${op.toString(16).padStart(2, '0')}`;
        throw bad(REFUSED[op] ? `unsupported pickle opcode ${REFUSED[op]} (${hex})` : `unknown pickle opcode ${hex}`);
      }
    }
  }
  throw inputError(file, what, 'truncated pickle: no STOP opcode');
}
