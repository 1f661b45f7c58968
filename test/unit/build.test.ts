/**
 * The build's staleness check (scripts/build/build.mjs) on a tree of its own: dist/ is
 * current only while no source is newer than its stamp and the same source files exist.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { sourceSnapshot, staleness } from '../../scripts/build/build.mjs'

function fakeTree(): string {
  const root = mkdtempSync(join(tmpdir(), 'hvlab-build-'))
  writeFileSync(join(root, 'package.json'), '{"name":"hvlab"}')
  writeFileSync(join(root, 'package-lock.json'), '{}')
  for (const dir of ['shared', 'agent', 'witness', 'array-emulator', 'scripts/cli', 'wasm']) mkdirSync(join(root, dir), { recursive: true })
  writeFileSync(join(root, 'shared/a.ts'), 'export const a = 1\n')
  writeFileSync(join(root, 'scripts/cli/b.ts'), 'export const b = 2\n')
  return root
}

function stamp(root: string): void {
  mkdirSync(join(root, 'dist'), { recursive: true })
  writeFileSync(join(root, 'dist/page-kernel.wasm'), '')
  writeFileSync(join(root, 'dist/build-stamp.json'), JSON.stringify(sourceSnapshot(root)))
}

const later = (path: string): void => utimesSync(path, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000))

t.test('dist/ is stale until built, current after, stale again when a source changes, is added or removed', async (t) => {
  const root = fakeTree()
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  t.equal(staleness(root), 'dist/ has not been built')
  stamp(root)
  t.equal(staleness(root), null)
  later(join(root, 'scripts/cli/b.ts'))
  t.equal(staleness(root), 'a source changed since the last build')
  stamp(root)
  writeFileSync(join(root, 'agent/c.ts'), '')
  utimesSync(join(root, 'agent/c.ts'), new Date(0), new Date(0)) // an old file copied in is still a new source
  t.equal(staleness(root), 'a source file was added or removed since the last build')
  stamp(root)
  rmSync(join(root, 'shared/a.ts'))
  t.equal(staleness(root), 'a source file was added or removed since the last build')
  stamp(root)
  later(join(root, 'package-lock.json'))
  t.equal(staleness(root), 'a source changed since the last build', 'a new install makes the bundled packages stale')
})

t.test('files that are not sources do not count', async (t) => {
  const root = fakeTree()
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  stamp(root)
  writeFileSync(join(root, 'shared/notes.md'), 'x')
  later(join(root, 'shared/notes.md'))
  t.equal(staleness(root), null)
})

t.test('the page kernel: dist/ is stale without its .wasm, and when its AssemblyScript source changes', async (t) => {
  const root = fakeTree()
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  writeFileSync(join(root, 'wasm/page-kernel.ts'), 'export function f(): i32 { return 1 }\n')
  stamp(root)
  t.equal(staleness(root), null)
  rmSync(join(root, 'dist/page-kernel.wasm'))
  t.equal(staleness(root), 'dist/page-kernel.wasm is missing')
  stamp(root)
  later(join(root, 'wasm/page-kernel.ts'))
  t.equal(staleness(root), 'a source changed since the last build')
})
