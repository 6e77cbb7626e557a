/** Element types, shapes with a symbolic token dimension, and source locations. */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32';

/** A dimension is a size, or 'T': the number of tokens of the call, bound at run time. */
export type Dim = number | 'T';
export type Shape = readonly Dim[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

/** Where the DSL call that built a node is: what every diagnostic points at. */
export interface SrcLoc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export const fmtLoc = (l: SrcLoc | undefined): string => (l ? `${l.file}:${l.line}:${l.col}` : '<unknown>');
export const fmtShape = (s: Shape): string => `[${s.join(', ')}]`;
export const fmtType = (t: TensorType): string => `${t.dtype}${fmtShape(t.shape)}`;
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Number of elements once T is bound. */
export const numel = (s: Shape, T: number): number => s.reduce<number>((n, d) => n * (d === 'T' ? T : d), 1);
