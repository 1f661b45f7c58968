/**
 * The layering rule of DESIGN's layout, checked over the source tree: a role (agent/,
 * witness/, array-emulator/) imports only from shared/ and its own folder, never from
 * another role or from scripts/; shared/ imports nothing outside shared/ but packages.
 * scripts/ (CLI, controller, benchmarks) may import anything. Each offending import is
 * printed as `file: 'specifier' -> where it points`.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ROLES = ['agent', 'witness', 'array-emulator'] as const
const CHECKED = ['shared', ...ROLES] as const

/** `from '…'`, `import('…')` and a bare `import '…'`. */
const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])([^'"\n]+)\1/gm

function importSpecifiers(source: string): string[] {
  return [...source.matchAll(IMPORT_RE)].map((m) => m[2] as string)
}

function sourceFiles(folder: string): string[] {
  const entries = readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
  return entries.filter((f) => f.endsWith('.ts')).map((f) => join(folder, f).split(sep).join('/'))
}

/** The top folder a relative specifier of `file` points into, or null for a package. */
function targetOf(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null
  return relative(ROOT, resolve(ROOT, dirname(file), spec))
    .split(sep)
    .join('/')
}

/** Offending imports of one file: `file: 'spec' -> target`. */
function layeringViolations(file: string, source: string): string[] {
  const own = file.split('/')[0] as string
  const allowed = own === 'shared' ? ['shared'] : ['shared', own]
  const out: string[] = []
  for (const spec of importSpecifiers(source)) {
    const target = targetOf(file, spec)
    if (target === null) continue
    if (!allowed.includes(target.split('/')[0] as string)) out.push(`${file}: '${spec}' -> ${target}`)
  }
  return out
}

t.test('the import scanner sees every form of import', async (t) => {
  const src = [
    "import t from 'tap'",
    "import type { A } from '../agent/a.js'",
    'import {',
    '  b,',
    "} from '../scripts/b.js'",
    "export { c } from './c.js'",
    "const d = await import('../witness/d.js')",
    "import './side-effect.js'",
  ].join('\n')
  t.same(importSpecifiers(src), ['tap', '../agent/a.js', '../scripts/b.js', './c.js', '../witness/d.js', './side-effect.js'])
  t.same(
    layeringViolations('shared/x.ts', "import { a } from '../agent/a.js'\nimport { z } from 'zod'\nimport { y } from './protocol/y.js'"),
    ["shared/x.ts: '../agent/a.js' -> agent/a.js"],
  )
  t.same(
    layeringViolations(
      'witness/w.ts',
      "import { a } from '../agent/cluster/a.js'\nimport { s } from '../shared/s.js'\nimport { o } from './own.js'",
    ),
    ["witness/w.ts: '../agent/cluster/a.js' -> agent/cluster/a.js"],
  )
  t.same(
    layeringViolations(
      'agent/csv/c.ts',
      "import { p } from '../../array-emulator/p.js'\nimport { q } from '../../scripts/cli/q.js'\nimport { r } from '../vm/r.js'",
    ),
    ["agent/csv/c.ts: '../../array-emulator/p.js' -> array-emulator/p.js", "agent/csv/c.ts: '../../scripts/cli/q.js' -> scripts/cli/q.js"],
  )
})

t.test('roles import only shared/ and their own folder; shared/ imports only shared/', async (t) => {
  const files = CHECKED.flatMap(sourceFiles)
  t.ok(files.length > 100, `scanned ${files.length} source files`)
  let imports = 0
  const violations: string[] = []
  for (const file of files) {
    const source = readFileSync(join(ROOT, file), 'utf8')
    imports += importSpecifiers(source).length
    violations.push(...layeringViolations(file, source))
  }
  t.ok(imports > files.length, `read ${imports} import specifiers`)
  if (violations.length > 0) t.comment(`imports that run the wrong way:\n${violations.join('\n')}`)
  t.same(violations, [], 'no role imports another role or scripts/, and shared/ imports no role')
})
