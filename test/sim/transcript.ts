/**
 * Data-driven transcript tests, in the style of etcd-raft's `testdata/*.txt`: a readable
 * script of inputs to a state machine and the effects expected of each, so that a
 * protocol change is reviewed as a text diff of steps and effects.
 *
 * A transcript file:
 *
 *   # a comment (kept, not compared); blank lines too
 *   > run 1000                  an input: a driver command and its arguments
 *   900 a1 <- tick              what the input is expected to print, one line each,
 *     emit cluster.election-…   up to the next blank line, comment or input
 *
 * The runner feeds every input to a driver (one per machine: it steps the machine, with
 * time as one of its inputs, and prints each effect in a stable one-line form), compares
 * what it printed with the expected lines, and on a mismatch fails with the first
 * difference and prints the whole actual transcript, ready to review and paste over the
 * file. With HVLAB_TRANSCRIPT_REWRITE=1 it writes the actual transcript to the file
 * instead (review the diff before committing it).
 *
 * An input that prints nothing is followed directly by the next one. A refusal the machine
 * throws (HvlabError) is output like any other (`refused HVLAB_E_…: message`); any other
 * error fails the test with its stack.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isHvlabError } from '../../shared/errors.js'

export const REWRITE_VARIABLE = 'HVLAB_TRANSCRIPT_REWRITE'

/** Runs one input line; returns the lines it prints. */
export interface TranscriptDriver {
  run(command: string, args: string[]): string[]
}

export interface TranscriptBlock {
  /** Comment and blank lines before the input, as written. */
  before: string[]
  /** 1-based line number of the input. */
  line: number
  /** The input line without its `> `. */
  input: string
  expected: string[]
}

export interface Transcript {
  blocks: TranscriptBlock[]
  /** Comment and blank lines after the last input's output. */
  after: string[]
}

const isDecor = (l: string): boolean => l.trim() === '' || l.trimStart().startsWith('#')

export function parseTranscript(text: string, file = 'transcript'): Transcript {
  const lines = text.replace(/\r\n/g, '\n').split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  const blocks: TranscriptBlock[] = []
  let decor: string[] = []
  let current: TranscriptBlock | null = null
  let inOutput = false
  lines.forEach((l, i) => {
    if (l.startsWith('>')) {
      current = { before: decor, line: i + 1, input: l.slice(1).trim(), expected: [] }
      blocks.push(current)
      decor = []
      inOutput = true
    } else if (isDecor(l)) {
      decor.push(l)
      inOutput = false
    } else {
      if (!current || !inOutput)
        throw new Error(`${file}:${i + 1}: an output line must follow an input (or its other output lines) directly: ${JSON.stringify(l)}`)
      ;(current as TranscriptBlock).expected.push(l)
    }
  })
  return { blocks, after: decor }
}

export function formatTranscript(blocks: readonly { before: string[]; input: string; output: string[] }[], after: string[]): string {
  const out: string[] = []
  for (const b of blocks) out.push(...b.before, `> ${b.input}`, ...b.output)
  out.push(...after)
  return `${out.join('\n')}\n`
}

/** Splits an input line into words (double quotes group words: `"a value"`). */
export function words(input: string): string[] {
  const out: string[] = []
  const re = /"([^"]*)"|(\S+)/g
  for (let m = re.exec(input); m; m = re.exec(input)) out.push(m[1] ?? m[2]!)
  return out
}

export interface TranscriptResult {
  /** The whole transcript as the driver printed it. */
  actual: string
  /** The first input whose output differs, or null. */
  mismatch: { line: number; input: string; expected: string[]; actual: string[] } | null
}

export function runTranscript(text: string, driver: TranscriptDriver, file = 'transcript'): TranscriptResult {
  const parsed = parseTranscript(text, file)
  const done: { before: string[]; input: string; output: string[] }[] = []
  let mismatch: TranscriptResult['mismatch'] = null
  for (const b of parsed.blocks) {
    const [command, ...args] = words(b.input)
    if (command === undefined) throw new Error(`${file}:${b.line}: an empty input`)
    let output: string[]
    try {
      output = driver.run(command, args)
    } catch (e) {
      if (!isHvlabError(e)) throw new Error(`${file}:${b.line}: > ${b.input}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
      output = [refusal(e)]
    }
    for (const l of output) {
      if (isDecor(l) || l.startsWith('>'))
        throw new Error(`${file}:${b.line}: the driver printed a line that would not read back as output: ${JSON.stringify(l)}`)
    }
    done.push({ before: b.before, input: b.input, output })
    if (!mismatch && !sameLines(output, b.expected)) mismatch = { line: b.line, input: b.input, expected: b.expected, actual: output }
  }
  return { actual: formatTranscript(done, parsed.after), mismatch }
}

/** How a refusal (an HvlabError the machine threw) reads in a transcript. */
export function refusal(e: { code: string; message: string }): string {
  return `refused ${e.code}: ${e.message}`
}

/** Compact, stable text for a value in a message or an event: `-` for null, `[a,b]`, `{k=v …}`, a ballot as `n/node`. */
export function fmt(v: unknown): string {
  if (v === null || v === undefined) return '-'
  if (Array.isArray(v)) return `[${v.map(fmt).join(',')}]`
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>
    const keys = Object.keys(o)
    if (keys.length === 2 && typeof o.n === 'number' && typeof o.node === 'string') return `${o.n}/${o.node}`
    return `{${keys.map((k) => `${k}=${fmt(o[k])}`).join(' ')}}`
  }
  return String(v)
}

/** ` k=v` for each field of `o` not in `skip`, in the object's order. */
export function fields(o: object, skip: readonly string[] = []): string {
  return Object.entries(o)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => ` ${k}=${fmt(v)}`)
    .join('')
}

/** The file's first comment paragraph, as one line. */
function titleOf(text: string): string | undefined {
  const lines: string[] = []
  for (const l of text.split('\n')) {
    const m = /^#\s?(.*)$/.exec(l)
    if (!m || m[1]!.trim() === '') break
    lines.push(m[1]!.trim())
  }
  return lines.length > 0 ? lines.join(' ') : undefined
}

function sameLines(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((l, i) => l.trimEnd() === b[i]!.trimEnd())
}

interface Tap {
  test(name: string, fn: (t: SubTap) => Promise<void>): unknown
}
interface SubTap {
  pass(message: string): unknown
  same(found: unknown, wanted: unknown, message: string): unknown
  comment(...message: unknown[]): unknown
}

/**
 * One test per `<dir>/<prefix>*.txt`: each runs in a fresh driver and must print exactly
 * what the file says.
 */
export function transcriptTests(t: Tap, dir: string, prefix: string, makeDriver: () => TranscriptDriver): void {
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.txt'))
    .sort()
  if (files.length === 0) throw new Error(`no transcripts ${prefix}*.txt in ${dir}`)
  for (const f of files) {
    const path = join(dir, f)
    const text = readFileSync(path, 'utf8')
    const title = titleOf(text) ?? f
    t.test(`${f}: ${title}`, async (t) => {
      const r = runTranscript(text, makeDriver(), f)
      if (r.mismatch === null) {
        t.pass(`every output matches (${parseTranscript(text, f).blocks.length} inputs)`)
        return
      }
      if (process.env[REWRITE_VARIABLE] === '1') {
        writeFileSync(path, r.actual)
        t.comment(`${f}: rewritten with the actual transcript (${REWRITE_VARIABLE}=1); review the diff`)
        t.pass('rewritten')
        return
      }
      const m = r.mismatch
      // Raw on stderr, so it can be pasted as it is (a tap comment would prefix every line).
      process.stderr.write(
        `\n----- the whole actual transcript of ${f} (review it; paste it over the file if it is right, or rerun with ${REWRITE_VARIABLE}=1) -----\n${r.actual}----- end of ${f} -----\n`,
      )
      t.same(m.actual, m.expected, `${f}:${m.line}: > ${m.input} (the first input whose output differs; the whole transcript is on stderr)`)
    })
  }
}
