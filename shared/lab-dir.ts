/**
 * The lab's data dir is private. It is created mode 0700, with its logs/ and data/, and
 * one that another local user owns or may write is refused (HVLAB_E_UNSAFE_DIR): whoever
 * can write it can plant a secret or a control file, and be handed the CLI's token.
 */
import { chmodSync, mkdirSync, statSync, type Stats } from 'node:fs'
import { HvlabError } from './errors.js'
import type { LabLayout } from './lab-layout.js'

const PRIVATE_DIR_MODE = 0o700
const GROUP_OR_OTHERS_WRITE = 0o022

/** Creates the data dir, logs/ and data/ (0700), refusing an unsafe data dir before anything goes in it. */
export function prepareLabDir(layout: LabLayout): void {
  mkdirSync(layout.root, { recursive: true, mode: PRIVATE_DIR_MODE })
  checkLabDir(layout.root)
  for (const dir of [layout.logs, layout.data]) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
    const stats = statSync(dir)
    refuseForeignOwner(dir, stats)
    // Labs made before this were 0755: tighten what is ours.
    if ((stats.mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(dir, PRIVATE_DIR_MODE)
  }
}

/**
 * Refuses a data dir owned by another user or writable by group or others. One that does
 * not exist yet passes: there is nothing in it to trust. Owners and modes are POSIX only.
 */
export function checkLabDir(dir: string): void {
  const stats = statSync(dir, { throwIfNoEntry: false })
  if (!stats) return
  if (!stats.isDirectory()) throw new HvlabError('HVLAB_E_USAGE', `${dir} is not a directory; choose another --dir`)
  refuseForeignOwner(dir, stats)
  if (process.getuid === undefined || (stats.mode & GROUP_OR_OTHERS_WRITE) === 0) return
  const who = [stats.mode & 0o020 ? 'group' : '', stats.mode & 0o002 ? 'others' : ''].filter(Boolean).join(' and ')
  throw new HvlabError(
    'HVLAB_E_UNSAFE_DIR',
    `data dir ${dir} is writable by ${who} (mode ${modeText(stats)}); another local user could plant its secret or control file. Run \`chmod 700 ${dir}\`, or choose another --dir`,
  )
}

function refuseForeignOwner(dir: string, stats: Stats): void {
  const uid = process.getuid?.()
  if (uid === undefined || stats.uid === uid) return
  throw new HvlabError(
    'HVLAB_E_UNSAFE_DIR',
    `data dir ${dir} belongs to uid ${stats.uid}, not to you (uid ${uid}); another user could plant its secret or control file. Choose a --dir of your own`,
  )
}

const modeText = (stats: Stats): string => '0' + (stats.mode & 0o777).toString(8)
