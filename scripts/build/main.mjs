/**
 * `npm run build` (and `npm ci`'s prepare): bundles the sources into dist/ (build.mjs).
 *   node scripts/build/main.mjs           build now
 *   node scripts/build/main.mjs --check   exit 1 if dist/ is missing or stale, else 0
 */
import { build, staleness } from './build.mjs'

if (process.argv.includes('--check')) {
  const why = staleness()
  if (why !== null) process.stderr.write(`hvlab: ${why}; run \`npm run build\`\n`)
  process.exitCode = why === null ? 0 : 1
} else {
  build()
}
