/**
 * The official PyTorch `.pth` (torch.save zip format): `<stem>/data.pkl` pickles a dict
 * name → `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`, each storage being a
 * persistent id `('storage', torch.XStorage, key, location, numel)` whose raw little-endian bytes are the
 * stored ZIP entry `<stem>/data/<key>`. We locate each tensor's bytes without reading them.
 */
import { UserError } from '../../kernels/errors.ts';
import { describeValue, inputError } from './errors.ts';
import { DTYPE_BYTES, numelOf, shapeStr, type StoredDType, type StoredTensor } from './dtypes.ts';
import { latin1, readAt, type ByteSource } from './source.ts';
import { parsePickle, PGlobal, PPersistent, PReduce, PTuple, type PValue } from './pickle.ts';
import { checkCrc, crc32, entryDataOffset, readZipDirectory, type ZipEntry } from './zip.ts';

const STORAGE_DTYPES: Record<string, StoredDType> = {
  FloatStorage: 'f32', HalfStorage: 'f16', BFloat16Storage: 'bf16',
  IntStorage: 'i32', LongStorage: 'i64', DoubleStorage: 'f64',
};
const MAX_PICKLE = 256 << 20;
/** Tied weights or views double a tensor's bytes at most in practice; beyond 4× the file is an amplification attack. */
const MAX_SHARING = 4; // a state dict's pickle is kilobytes; more is corruption

/** The only callables a tensor checkpoint may name. Everything else (os.system, eval…) is refused. */
function allowGlobal(module: string, name: string): boolean {
  return (module === 'torch._utils' && name === '_rebuild_tensor_v2')
    || (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name))
    || (module === 'collections' && name === 'OrderedDict');
}

const isIndex = (v: PValue): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function readPthTensors(f: ByteSource): StoredTensor[] {
  const zip = readZipDirectory(f);
  const pkls = [...zip.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw inputError(f.name, undefined, pkls.length ? `ZIP holds ${pkls.length} data.pkl entries` : 'not a PyTorch checkpoint: no <stem>/data.pkl in the ZIP');
  }
  const pklName = pkls[0]!;
  const stem = pklName.slice(0, -'data.pkl'.length);
  const entryBytes = (e: ZipEntry, max: number, check = true) => {
    if (e.size > max) throw inputError(f.name, e.name, `implausibly large (${e.size} bytes)`);
    const bytes = readAt(f, entryDataOffset(f, e), e.size, e.name);
    if (check) checkCrc(f.name, e, bytes);
    return bytes;
  };
  const byteorder = zip.get(`${stem}byteorder`);
  if (byteorder && latin1(entryBytes(byteorder, 16)) !== 'little') {
    throw inputError(f.name, byteorder.name, 'big-endian checkpoints are not supported');
  }

  // The pickle is parsed before its CRC-32 is checked (parsing is inert): a refused global or opcode is
  // named even in a file whose checksum is off too, and the message says both.
  const pklEntry = zip.get(pklName)!;
  const pklBytes = entryBytes(pklEntry, MAX_PICKLE, false);
  let root: PValue;
  try {
    root = parsePickle(pklBytes, allowGlobal, f.name, pklName);
  } catch (e) {
    if (crc32(pklBytes) !== pklEntry.crc32 && e instanceof UserError) {
      throw new UserError(`${e.message}; its CRC-32 does not match the ZIP directory either (a corrupt file)`, e.exitCode);
    }
    throw e;
  }
  checkCrc(f.name, pklEntry, pklBytes);
  if (!(root instanceof Map)) throw inputError(f.name, pklName, 'does not hold a dict of tensors');

  const storageStart = new Map<string, number>(); // key → data offset, each local header read once
  const tensors: StoredTensor[] = [];
  for (const [name, value] of root) {
    if (typeof name !== 'string') throw inputError(f.name, pklName, `dict key ${describeValue(name)} is not a string`);
    const bad = (problem: string) => inputError(f.name, name, problem);

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (!(value instanceof PReduce) || !(value.fn instanceof PGlobal) || value.fn.name !== '_rebuild_tensor_v2') {
      throw bad('not a tensor (expected torch._utils._rebuild_tensor_v2)');
    }
    const [storage, offset, size, stride] = value.args.items;
    const pid = storage instanceof PPersistent && storage.pid instanceof PTuple ? storage.pid.items : [];
    const [tag, type, key] = pid;
    if (tag !== 'storage' || !(type instanceof PGlobal) || type.module !== 'torch' || typeof key !== 'string') {
      throw bad('malformed storage reference');
    }
    const dtype = Object.hasOwn(STORAGE_DTYPES, type.name) ? STORAGE_DTYPES[type.name] : undefined;
    if (!dtype) throw bad(`unsupported storage type torch.${type.name}`);
    if (!isIndex(offset ?? null) || !(size instanceof PTuple) || !(stride instanceof PTuple)) throw bad('malformed tensor arguments');
    const shape = size.items;
    const numel = numelOf(shape);
    if (numel === undefined || stride.items.length !== shape.length || !stride.items.every(isIndex)) {
      throw bad('malformed tensor size/stride');
    }
    // Only contiguous (row-major) layouts can be handed out as a flat slice; a dim of size 1 may have any stride.
    let expect = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (shape[d] !== 1 && stride.items[d] !== expect) {
        throw bad(`non-contiguous tensor (size ${shapeStr(shape as number[])}, stride ${shapeStr(stride.items as number[])}); save it with .contiguous()`);
      }
      expect *= shape[d] as number;
    }

    const entry = zip.get(`${stem}data/${key}`);
    if (!entry) throw bad(`storage ${stem}data/${key} is missing from the ZIP`);
    let start = storageStart.get(key);
    if (start === undefined) storageStart.set(key, (start = entryDataOffset(f, entry)));
    const elem = DTYPE_BYTES[dtype];
    const begin = (offset as number) * elem, nbytes = numel * elem;
    if (begin + nbytes > entry.size) {
      throw bad(`tensor bytes ${begin}..${begin + nbytes} extend past its storage ${entry.name} (${entry.size} bytes)`);
    }
    tensors.push({
      name, dtype, shape: shape as number[], offset: start + begin, nbytes,
      storage: { name: entry.name, offset: start, size: entry.size, crc32: entry.crc32 },
    });
  }
  // Storages may be shared (tied weights, views), but each tensor read is its own copy: tensors declaring
  // many times the file's bytes would make a small file take gigabytes (400 tensors over one storage).
  const declared = tensors.reduce((n, t) => n + t.nbytes, 0);
  if (declared > MAX_SHARING * f.size) {
    throw inputError(f.name, undefined, `tensors declare ${declared} bytes, over ${MAX_SHARING}× the file's ${f.size}: storages shared implausibly often`);
  }
  return tensors;
}
