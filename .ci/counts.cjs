// The last line of .ci/run from vitest's JSON report: "N passed, N failed, N skipped".
//   node .ci/counts.cjs vitest.json
// A test file that fails before its tests are collected (an import error, a throw at top level) has no
// test results: it counts as one failure, so it cannot vanish from the totals. Skipped = vitest's pending
// (skip, skipIf) plus todo tests.
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const broken = r.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed')).length;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + broken} failed, ${(r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)} skipped`);
