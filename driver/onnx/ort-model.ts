/**
 * The ONNX export run by onnxruntime (onnxruntime-node's CPU EP, or onnxruntime-web's WASM EP, whichever
 * module is handed in), behind the TargetModel interface every target offers: `run('decode')` feeds the
 * step model one token, `run('prefill')` the Scan prefill model T tokens; the state is kept here as
 * ort Tensors and fed back each call. `rwkvc logits --target onnxruntime` and the bench peer use it.
 */
import type * as ortNode from 'onnxruntime-node';
import type { ModelConfig } from '../../kernels/config.ts';
import { UserError } from '../../kernels/errors.ts';
import type { StateTensors, TargetModel } from '../../targets/backend.ts';

type Ort = Pick<typeof ortNode, 'InferenceSession' | 'Tensor'>;
type Session = ortNode.InferenceSession;
type OrtTensor = ortNode.Tensor;

export interface OrtModelOptions {
  /** intraOpNumThreads (onnxruntime-node); onnxruntime-web takes its threads from ort.env.wasm.numThreads. */
  threads?: number;
  /** execution providers; default ['cpu'] (onnxruntime-web: ['wasm']). */
  providers?: string[];
  label?: string;
}

/** The state tensors a model of `config` carries, with their shapes. */
export function stateShapes(config: ModelConfig): Record<string, number[]> {
  const { nLayer, nEmbd: C, nHead: H, headSize: N } = config;
  const s: Record<string, number[]> = {};
  for (let l = 0; l < nLayer; l++) {
    s[`state.${l}.att_shift`] = [C];
    s[`state.${l}.wkv`] = [H, N, N];
    s[`state.${l}.ffn_shift`] = [C];
  }
  return s;
}

/**
 * `step` and/or `prefill` (a model file's bytes or path). Without a step model, decode feeds the prefill
 * model one token (the same graph with a one-iteration Scan); without a prefill model, prefill is T steps.
 */
export async function createOrtModel(ort: Ort, config: ModelConfig, step: Uint8Array | string | null, prefill: Uint8Array | string | null,
  o: OrtModelOptions = {}): Promise<TargetModel> {
  if (!step && !prefill) throw new Error('createOrtModel: no model');
  const opts: ortNode.InferenceSession.SessionOptions = {
    executionProviders: (o.providers ?? ['cpu']) as never,
    graphOptimizationLevel: 'all',
    ...(o.threads ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
  };
  const open = (m: Uint8Array | string) => (typeof m === 'string' ? ort.InferenceSession.create(m, opts) : ort.InferenceSession.create(m, opts));
  const stepS = step ? await open(step) : null;
  const prefillS = prefill ? await open(prefill) : null;
  const shapes = stateShapes(config);
  const zero = () => Object.fromEntries(Object.entries(shapes).map(([k, sh]) =>
    [k, new ort.Tensor('float32', new Float32Array(sh.reduce((a, b) => a * b, 1)), sh)])) as Record<string, OrtTensor>;
  let state = zero();
  let queue: Promise<unknown> = Promise.resolve();
  let disposed = false;
  const V = config.vocabSize;

  const call = async (s: Session, tokenName: string, tokens: Int32Array): Promise<Float32Array> => {
    for (const t of tokens) if (!(t >= 0 && t < V)) throw new UserError(`token id ${t} is outside the vocabulary (0..${V - 1})`);
    const feeds: Record<string, OrtTensor> = { ...state, [tokenName]: new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [tokens.length]) };
    const out = await s.run(feeds);
    const next: Record<string, OrtTensor> = {};
    for (const k of Object.keys(shapes)) next[k] = out[`next.${k}`];
    state = next;
    return Float32Array.from(out.logits.data as Float32Array);
  };
  const queued = <R>(f: () => Promise<R>): Promise<R> => {
    const r = queue.then(() => {
      if (disposed) throw new UserError('this model was disposed');
      return f();
    });
    queue = r.catch(() => undefined);
    return r;
  };

  return {
    target: o.label ?? 'onnxruntime',
    maxTokens: prefillS ? Number.MAX_SAFE_INTEGER : 1,
    run(program, tokens) {
      return queued(async () => {
        if (program === 'decode' && tokens.length !== 1) throw new UserError(`the decode program takes 1 token, got ${tokens.length}`);
        if (stepS && (program === 'decode' || !prefillS)) {
          const logits = new Float32Array(tokens.length * V);
          for (let t = 0; t < tokens.length; t++) logits.set(await call(stepS, 'token', tokens.subarray(t, t + 1)), t * V);
          return logits;
        }
        return call(prefillS!, 'tokens', tokens);
      });
    },
    readState() {
      return queued(async () => Object.fromEntries(Object.entries(state).map(([k, t]) => [k, Float32Array.from(t.data as Float32Array)])));
    },
    writeState(s: StateTensors) {
      return queued(async () => {
        const next = { ...state };
        for (const [k, v] of Object.entries(s)) {
          const sh = shapes[k];
          if (!sh) throw new UserError(`state ${k}: not a state tensor of this model`);
          const n = sh.reduce((a, b) => a * b, 1);
          if (v.length !== n) throw new UserError(`state ${k}: expected ${n} values, got ${v.length}`);
          next[k] = new ort.Tensor('float32', Float32Array.from(v), sh);
        }
        state = next;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      void queue.then(() => Promise.all([stepS?.release(), prefillS?.release()])).catch(() => undefined);
    },
  };
}
