/**
 * No function in the non-test code is over FUNCTION_LINES_MAX lines (TigerBeetle's rule
 * is 70; ours is a hard 100 with 70 as the aim). A function counts from its first line to
 * its closing brace, so a closure nested in it counts towards it too: a long shell that
 * hides its parts in closures fails here. Each offender is printed as
 * `file:line name (N lines)`.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const FOLDERS = ['shared', 'agent', 'witness', 'array-emulator', 'scripts', 'bin'] as const
const FUNCTION_LINES_MAX = 100

interface FunctionSpan {
  at: string
  name: string
  lines: number
}

function sourceFiles(folder: string): string[] {
  const entries = readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
  return entries.filter((f) => /\.(ts|js|mjs)$/.test(f) && !f.endsWith('.d.ts')).map((f) => join(folder, f).split(sep).join('/'))
}

function nameOf(node: ts.FunctionLikeDeclaration): string {
  if (node.name) return node.name.getText()
  const parent = node.parent
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText()
  return '<anonymous>'
}

/** Every function with a body in `source`, with its length in lines. */
function functionSpans(file: string, source: string): FunctionSpan[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true)
  const out: FunctionSpan[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line
      out.push({ at: `${file}:${first + 1}`, name: nameOf(node as ts.FunctionLikeDeclaration), lines: last - first + 1 })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return out
}

t.test('the measure counts a function from its first line to its closing brace, closures included', async (t) => {
  const src = ['function outer() {', '  const inner = () => {', '    return 1', '  }', '  return inner()', '}'].join('\n')
  const spans = functionSpans('x.ts', src)
  t.same(
    spans.map((s) => [s.name, s.lines]),
    [
      ['outer', 6],
      ['inner', 3],
    ],
  )
})

t.test(`no function in the non-test code is over ${FUNCTION_LINES_MAX} lines`, async (t) => {
  const files = FOLDERS.flatMap(sourceFiles)
  t.ok(files.length > 50, 'the scan sees the source tree')
  const long = files
    .flatMap((f) => functionSpans(f, readFileSync(join(ROOT, f), 'utf8')))
    .filter((s) => s.lines > FUNCTION_LINES_MAX)
    .map((s) => `${s.at} ${s.name} (${s.lines} lines)`)
  t.same(long, [], 'split these into shorter functions')
})
