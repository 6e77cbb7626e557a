/**
 * Checkpoints for Node: everything of the portable reader.ts, plus opening a file by path (lazy
 * positioned reads, fileio.ts) and writing safetensors. Browser code imports reader.ts instead.
 */
import { openFile } from './fileio.ts';
import { openCheckpointSource, type Checkpoint } from './reader.ts';

export * from './reader.ts';
export { writeSafetensors, type TensorToWrite } from './safetensors-write.ts';

/** Open a checkpoint file (`.pth` or safetensors); only its headers are read now. */
export function openCheckpoint(path: string): Checkpoint {
  return openCheckpointSource(openFile(path));
}
