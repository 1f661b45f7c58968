/**
 * The environment variables a lab process honours, parsed and checked in one place. The
 * lab controller spawns every process with its own environment, so whatever `hvlab up`
 * runs with reaches every host, array and witness. A value that is not one of those
 * allowed is an error that says what is allowed: the process refuses to start rather
 * than guess.
 *
 *   HVLAB_DISK_WRITE_JOURNAL  '1': each host journals its VMs' disk writes (agent/vm/disk-write-journal.ts);
 *                             unset, '' or '0': it does not.
 *   HVLAB_UNSAFE_TEST_ONLY    a comma-separated list of deliberately broken behaviours, for tests that
 *                             prove a checker catches them; unset or '': none. Never in a real lab.
 */
import { HvlabError } from './errors.js'

export const HVLAB_DISK_WRITE_JOURNAL = 'HVLAB_DISK_WRITE_JOURNAL'
export const HVLAB_UNSAFE_TEST_ONLY = 'HVLAB_UNSAFE_TEST_ONLY'

/** The unsafe settings known. `ignore-quorum-loss`: a host that lost its quorum lease keeps running its VMs. */
export const UNSAFE_SETTINGS = ['ignore-quorum-loss'] as const
export type UnsafeSetting = (typeof UNSAFE_SETTINGS)[number]

/** What each unsafe setting breaks, for the warning a process logs when it starts with it. */
export const UNSAFE_SETTING_EFFECTS: Readonly<Record<UnsafeSetting, string>> = {
  'ignore-quorum-loss': 'a host that loses its quorum lease keeps running its VMs, so a VM may run on two hosts at once',
}

export interface LabEnv {
  disk_write_journal: boolean
  unsafe: ReadonlySet<UnsafeSetting>
}

/** How much of a bad value an error message quotes. */
const QUOTED_CHARS_MAX = 64

const quoted = (value: string): string => JSON.stringify(value.slice(0, QUOTED_CHARS_MAX))

const isUnsafeSetting = (word: string): word is UnsafeSetting => (UNSAFE_SETTINGS as readonly string[]).includes(word)

function parseDiskWriteJournal(value: string | undefined): boolean {
  if (value === undefined || value === '' || value === '0') return false
  if (value === '1') return true
  throw new HvlabError('HVLAB_E_USAGE', `${HVLAB_DISK_WRITE_JOURNAL} must be '1' (on), '0' or unset (off); got ${quoted(value)}`)
}

/** Words separated by commas; blanks around a word and empty entries are ignored. */
function parseUnsafe(value: string | undefined): ReadonlySet<UnsafeSetting> {
  const out = new Set<UnsafeSetting>()
  for (const raw of (value ?? '').split(',')) {
    const word = raw.trim()
    if (word === '') continue
    if (!isUnsafeSetting(word))
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${HVLAB_UNSAFE_TEST_ONLY} holds unknown setting ${quoted(word)}; allowed (comma-separated): ${UNSAFE_SETTINGS.join(', ')}`,
      )
    out.add(word)
  }
  return out
}

/** The lab settings in `env` (normally process.env); throws HVLAB_E_USAGE naming the allowed values. */
export function labEnv(env: NodeJS.ProcessEnv): LabEnv {
  return {
    disk_write_journal: parseDiskWriteJournal(env[HVLAB_DISK_WRITE_JOURNAL]),
    unsafe: parseUnsafe(env[HVLAB_UNSAFE_TEST_ONLY]),
  }
}
