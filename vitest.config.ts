import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take a minute or more in CI, longest first (CI run on 2 cores: kernels 152 s, golden
 * 134 s, browser demo 117 s, npm pack 82 s, cuda-sim 68 s, WGSL kernels 46 s). They start first, so the
 * last file to finish is a short one; vitest's own order (longest first by the durations of the last run,
 * else largest file first) has no durations on a clean clone. cuda-sim after golden: golden's cuda-sim
 * models build the same emulator libraries (out/cache/cuda-sim), which cuda-sim.test.ts then finds built.
 */
const SLOW_FIRST = [
  'test/targets/kernels.test.ts',
  'test/targets/golden.test.ts',
  'test/browser-demo.test.ts',
  'test/npm-pack.test.ts',
  'test/cuda-sim.test.ts',
  'test/wgsl-kernels.test.ts',
];

class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = SLOW_FIRST.indexOf(relative(f.project.config.root, f.moduleId).split('\\').join('/'));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b)); // stable: the rest keep vitest's order
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default is one worker less than the cores: on CI's 2 cores, one, so every file waited for the
    // one before. Two: most files are one busy Node thread, or wait on a child (Chromium, g++, nvcc, a CLI).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    sequence: { sequencer: SlowFirst },
  },
});
