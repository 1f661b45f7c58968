/** Options and output helpers every `hvlab` command shares. */
import { Argument, InvalidArgumentError, Option } from 'commander'
import { DEFAULT_LAB_DIR } from '../../shared/lab-layout.js'
import { currentIo } from './cli-io.js'

export const dirOption = (): Option =>
  new Option('--dir <dir>', 'the lab’s data dir: secret, logs, data, control endpoint').default(DEFAULT_LAB_DIR)

/** Prints a line on the current run's stdout (the process's outside a run). */
export const out = (s: string): void => currentIo().stdout(s + '\n')
export const printJson = (v: unknown): void => out(JSON.stringify(v, null, 2))
/** What a reporting command prints: `value` as JSON with --json, else the text made from it. */
export const printResult = (json: boolean | undefined, value: unknown, text: () => string): void => (json ? printJson(value) : out(text()))

/** Parses a comma-separated list of names. */
export const nameList = (v: string): string[] => {
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (items.length === 0) throw new InvalidArgumentError('a comma-separated list of names')
  return items
}

/** A parser of numbers within bounds that `accept` allows; `what` names them in the error ("an integer"). */
const boundedNumber =
  (what: string, accept: (n: number) => boolean) =>
  (min: number, max: number) =>
  (v: string): number => {
    const n = Number(v)
    if (!accept(n) || n < min || n > max) throw new InvalidArgumentError(`${what} from ${min} to ${max}`)
    return n
  }

/** Parses an integer within bounds. */
export const intIn = boundedNumber('an integer', Number.isInteger)

/** Parses a number within bounds (fractions allowed). */
export const numberIn = boundedNumber('a number', Number.isFinite)

/** The sides of a partition, a link or a reset: process or site names, comma-separated (optional where a shape may stand instead). */
export const sideA = (optional = false): Argument =>
  new Argument(optional ? '[a]' : '<a>', 'one side: processes or sites, comma-separated, e.g. site-a or host-a1,host-a2').argParser(
    nameList,
  )
export const sideB = (optional = false): Argument =>
  new Argument(optional ? '[b]' : '<b>', 'the other side, e.g. site-b or witness').argParser(nameList)
