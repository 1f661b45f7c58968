/**
 * Where a JSON text first goes wrong, as a line and a column a person can go to: JSON.parse
 * says only what it expected (and Node versions word it differently), so the text is
 * scanned again by this small recogniser of RFC 8259, which stops at the first character
 * that cannot continue a JSON text.
 */

export interface TextPosition {
  /** From 1. */
  line: number
  /** From 1, in UTF-16 code units as editors count them for most text. */
  column: number
}

/** Thrown inside the scan: the offset where the text stops being JSON. */
class StopAt {
  constructor(readonly offset: number) {}
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r'])
const LITERALS = ['true', 'false', 'null']
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y
// A string's body: any character but a quote, a backslash or a control character, or an escape.
const STRING_BODY = /(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*/y

class JsonScan {
  i = 0
  constructor(private readonly text: string) {}

  skipSpace(): void {
    while (this.i < this.text.length && WHITESPACE.has(this.text[this.i]!)) this.i++
  }

  expect(c: string): void {
    this.skipSpace()
    if (this.text[this.i] !== c) throw new StopAt(this.i)
    this.i++
  }

  value(): void {
    this.skipSpace()
    const c = this.text[this.i]
    if (c === '{') return this.members('}', () => (this.string(), this.expect(':'), this.value()))
    if (c === '[') return this.members(']', () => this.value())
    if (c === '"') return this.string()
    const literal = LITERALS.find((l) => this.text.startsWith(l, this.i))
    if (literal) return void (this.i += literal.length)
    this.sticky(NUMBER)
  }

  /** An object's or an array's members after its opening character, up to `close`. */
  private members(close: string, member: () => void): void {
    this.i++
    this.skipSpace()
    if (this.text[this.i] === close) return void this.i++
    for (;;) {
      member()
      this.skipSpace()
      const c = this.text[this.i]
      if (c === close) return void this.i++
      if (c !== ',') throw new StopAt(this.i)
      this.i++
    }
  }

  private string(): void {
    this.expect('"')
    this.sticky(STRING_BODY, true)
    if (this.text[this.i] !== '"') throw new StopAt(this.i)
    this.i++
  }

  /** Matches `re` (sticky) at the cursor; an empty match is a stop unless `emptyOk`. */
  private sticky(re: RegExp, emptyOk = false): void {
    re.lastIndex = this.i
    const m = re.exec(this.text)
    if (!m || (m[0].length === 0 && !emptyOk)) throw new StopAt(this.i)
    this.i += m[0].length
  }
}

/** The offset where `text` stops being one JSON value, or undefined when it is JSON. */
export function jsonSyntaxErrorOffset(text: string): number | undefined {
  const scan = new JsonScan(text)
  try {
    scan.value()
    scan.skipSpace()
    return scan.i < text.length ? scan.i : undefined
  } catch (e) {
    if (e instanceof StopAt) return e.offset
    // Nested deeper than the stack allows: JSON.parse's own message has to do.
    if (e instanceof RangeError) return undefined
    throw e
  }
}

/** The line and column of `offset` in `text`. */
export function positionOf(text: string, offset: number): TextPosition {
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  return { line, column: offset - (before.lastIndexOf('\n') + 1) + 1 }
}

/** A line of JSON (a journal's, a log's), or undefined when it is longer than `chars_max` or not JSON: a torn or foreign line. */
export function parseJsonLine(line: string, chars_max: number): unknown {
  if (line.length > chars_max) return undefined
  try {
    return JSON.parse(line) as unknown
  } catch {
    return undefined
  }
}
