/**
 * The build: esbuild bundles each process's entry and each worker file into one JavaScript
 * file in dist/ (hvlab's own code bundled, packages left in node_modules), so no process
 * compiles TypeScript when it starts, and asc compiles the page-diff kernel to
 * dist/page-kernel.wasm (wasm.mjs). It runs from `npm ci` (prepare), from `npm test` before
 * tap, and from ensureBuilt() whenever a source is newer than the build: the `hvlab` binary
 * and the lab's spawner never run a stale dist/.
 *
 * Plain JavaScript, so that `node` runs it with no loader. The bundles sit directly in dist/,
 * one level below the project root as shared/ is: paths the code takes relative to its own
 * module (the default topology, a worker next to its pool) resolve the same from the sources
 * and from the bundles.
 *
 * Synchronous throughout (esbuild's buildSync): the spawner resolves a bundle in the middle of
 * synchronous work, and a rebuild happens at most once per process. `npm run build` runs it
 * through main.mjs (a separate file, so that a bundle that includes this module never mistakes
 * itself for the build command).
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildWasm, WASM_OUTPUT } from './wasm.mjs'

/** Each bundle in dist/ (`NAME.js`) and the source it is built from. */
export const ENTRIES = {
  cli: 'scripts/cli/main.ts',
  controller: 'scripts/controller/main.ts',
  host: 'agent/main.ts',
  witness: 'witness/main.ts',
  standalone: 'agent/standalone-main.ts',
  array: 'array-emulator/main.ts',
  'page-diff-worker': 'agent/migration/page-diff-worker.ts',
  'page-apply-worker': 'agent/migration/page-apply-worker.ts',
  'block-hash-worker': 'array-emulator/block-hash-worker.ts',
  bench: 'scripts/bench/main.ts',
  'bench-migration-endpoint': 'scripts/bench/migration-endpoint.ts',
  'bench-page-diff': 'scripts/bench/page-diff.ts',
}

/** Packages left in node_modules: they load worker or native files by path at run time. */
export const EXTERNAL_PACKAGES = ['pino', 'pino-roll', 'piscina', 'bufferutil', 'msgpackr-extract', 'esbuild']

/** The folders whose files go into the bundles: a change in any of them makes dist/ stale. */
const SOURCE_DIRS = ['shared', 'agent', 'witness', 'array-emulator', 'scripts', 'wasm']
const STAMP = 'build-stamp.json'

/** The project root: the nearest folder above `fromUrl` whose package.json is hvlab's. */
export function projectRoot(fromUrl = import.meta.url) {
  for (let dir = dirname(fileURLToPath(fromUrl)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'hvlab') return dir
    if (dirname(dir) === dir) throw new Error(`no hvlab package.json above ${fromUrl}`)
  }
}

/** The sources as the build sees them: how many, which, and the newest modification time. */
export function sourceSnapshot(root) {
  const base = resolve(root)
  const files = []
  let newest_ms = 0
  for (const top of SOURCE_DIRS) {
    for (const entry of readdirSync(join(base, top), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !/\.(ts|mjs)$/.test(entry.name)) continue
      // Concatenated and sliced, not join()ed and relative()d: this runs on every `hvlab` call.
      const path = `${entry.parentPath ?? entry.path}${sep}${entry.name}`
      files.push(path.slice(base.length + 1))
      newest_ms = Math.max(newest_ms, statSync(path).mtimeMs)
    }
  }
  // Packages are bundled: a changed install (package-lock.json) makes the bundles stale too.
  for (const file of ['package.json', 'package-lock.json']) newest_ms = Math.max(newest_ms, statSync(join(root, file)).mtimeMs)
  files.sort()
  return { newest_ms, files_sha1: createHash('sha1').update(files.join('\n')).digest('hex') }
}

/** Why dist/ may not be run as it is (missing, or older than a source, or built from other files), or null when it is current. */
export function staleness(root = projectRoot()) {
  const stampFile = join(root, 'dist', STAMP)
  if (!existsSync(stampFile)) return 'dist/ has not been built'
  if (!existsSync(join(root, WASM_OUTPUT))) return `${WASM_OUTPUT} is missing`
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8'))
  const now = sourceSnapshot(root)
  if (stamp.files_sha1 !== now.files_sha1) return 'a source file was added or removed since the last build'
  if (now.newest_ms > stamp.newest_ms) return 'a source changed since the last build'
  return null
}

/** Bundles every entry into dist/. Each file is written whole then renamed, the stamp last: a concurrent reader never sees half a build. */
export function build(root = projectRoot()) {
  const snapshot = sourceSnapshot(root)
  const esbuild = createRequire(import.meta.url)('esbuild')
  const result = esbuild.buildSync({
    absWorkingDir: root,
    entryPoints: Object.entries(ENTRIES).map(([out, src]) => ({ out, in: src })),
    outdir: 'dist',
    bundle: true,
    // Packages are bundled too (one file to load instead of dozens), except those that load
    // files of their own at run time (pino's and piscina's worker threads, native addons) and
    // the build's own esbuild. A bundled package's require() of one of those goes through
    // the banner's createRequire.
    external: EXTERNAL_PACKAGES,
    banner: {
      js: "import { createRequire as __hvlabCreateRequire } from 'node:module'; const require = __hvlabCreateRequire(import.meta.url);",
    },
    platform: 'node',
    format: 'esm',
    // Code the entries share, and what a dynamic import() loads, goes into chunks next to the
    // bundles: the CLI loads the controller's code only for `hvlab up`, the host shares its
    // code with its workers.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    target: 'node20',
    sourcemap: 'linked',
    minifyWhitespace: true,
    minifySyntax: true,
    write: false,
    logLevel: 'warning',
  })
  mkdirSync(join(root, 'dist'), { recursive: true })
  for (const file of result.outputFiles) writeWhole(file.path, file.contents)
  buildWasm(root) // the page-diff kernel (scripts/build/wasm.mjs), before the stamp says dist/ is whole
  writeWhole(join(root, 'dist', STAMP), JSON.stringify(snapshot) + '\n')
  removeOldChunks(join(root, 'dist'), new Set(result.outputFiles.map((f) => f.path)))
}

/** A process started from an earlier build may still import its chunks: only chunks an hour old and not part of this build go. */
const OLD_CHUNK_MS = 60 * 60 * 1000

function removeOldChunks(dist, current) {
  for (const name of readdirSync(dist)) {
    const path = join(dist, name)
    if (!name.startsWith('chunk-') || current.has(path)) continue
    if (Date.now() - statSync(path).mtimeMs > OLD_CHUNK_MS) rmSync(path, { force: true })
  }
}

function writeWhole(path, contents) {
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, contents)
  renameSync(tmp, path)
}

let checked = false

/** Rebuilds dist/ when it is stale, saying why on stderr; checks once per process. */
export function ensureBuilt(root = projectRoot()) {
  if (checked) return
  const why = staleness(root)
  if (why !== null) {
    process.stderr.write(`hvlab: ${why}; building dist/ (npm run build) …\n`)
    build(root)
  }
  checked = true
}

/** The file of bundle `name` in dist/, rebuilt first when stale. */
export function bundlePath(name, root = projectRoot()) {
  if (!(name in ENTRIES)) throw new Error(`no bundle named ${name}; known: ${Object.keys(ENTRIES).join(', ')}`)
  ensureBuilt(root)
  return join(root, 'dist', `${name}.js`)
}
