/**
 * What the lab's environment settings (shared/lab-env.ts) do in a host process: with
 * HVLAB_DISK_WRITE_JOURNAL=1 it opens the host's disk write journal
 * (`<lab>/data/<host>/disk-writes.jsonl`, agent/vm/disk-write-journal.ts) that every VM's
 * disk writes go to; every HVLAB_UNSAFE_TEST_ONLY setting is logged loudly at start and
 * handed to the roles. A journal that cannot be opened stops the host from starting: a
 * soak that asked for it would otherwise check writes nobody recorded.
 */
import { mkdirSync } from 'node:fs'
import { HvlabError, describeError } from '../shared/errors.js'
import { HVLAB_DISK_WRITE_JOURNAL, HVLAB_UNSAFE_TEST_ONLY, UNSAFE_SETTING_EFFECTS, type LabEnv } from '../shared/lab-env.js'
import type { LabProcess } from '../shared/lab-process.js'
import type { RoleHostOptions } from './cluster/role-host.js'
import { DiskWriteJournal } from './vm/disk-write-journal.js'

/** The host's journal file: `<lab>/data/<host>/disk-writes.jsonl`. */
export function diskWriteJournalPath(p: Pick<LabProcess, 'layout' | 'name'>): string {
  return p.layout.diskWriteJournal(p.name)
}

/**
 * Opens the journal for append (creating the host's data dir); throws when it cannot be
 * opened. It is never closed: the process's exit closes it, so no write of a VM still
 * running goes out unrecorded. A later write error is logged once and ends journaling.
 */
export function openDiskWriteJournal(p: Pick<LabProcess, 'layout' | 'name' | 'log'>): DiskWriteJournal {
  const path = diskWriteJournalPath(p)
  mkdirSync(p.layout.processData(p.name), { recursive: true })
  let failure: unknown
  const journal = new DiskWriteJournal(path, {
    onError: (e) => {
      failure = e
      p.log.error({ err: describeError(e), path }, 'cannot write the disk write journal: it stops, later disk writes go unrecorded')
    },
  })
  if (!journal.writing)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `${HVLAB_DISK_WRITE_JOURNAL}=1 but the disk write journal ${path} cannot be opened: ${describeError(failure)}`,
    )
  p.log.info({ path }, 'journaling every disk write of the VMs here')
  return journal
}

/** Logs each unsafe setting at error level, naming it and what it breaks. */
export function warnUnsafeSettings(p: Pick<LabProcess, 'log'>, env: LabEnv): void {
  for (const setting of [...env.unsafe].sort()) {
    p.log.error(
      { unsafe: setting, env: HVLAB_UNSAFE_TEST_ONLY },
      `UNSAFE TEST-ONLY SETTING ${setting} is on: ${UNSAFE_SETTING_EFFECTS[setting]}; never use it outside a test`,
    )
  }
}

/** The roles' options from the lab's environment: the journal when asked for, the unsafe settings (warned of). */
export function hostLabOptions(p: Pick<LabProcess, 'layout' | 'name' | 'log'>, env: LabEnv): RoleHostOptions {
  warnUnsafeSettings(p, env)
  return {
    ...(env.disk_write_journal ? { disk_write_journal: openDiskWriteJournal(p) } : {}),
    ...(env.unsafe.has('ignore-quorum-loss') ? { unsafe_ignore_quorum_loss: true } : {}),
  }
}
