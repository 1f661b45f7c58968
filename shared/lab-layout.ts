/**
 * Where a lab keeps its state inside its data dir (default `./.hvlab`): the secret, its
 * certificate authority, the control endpoint, each process's log and data, the timeline.
 */
import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { LAB_ORGANISATION } from './organisation.js'

export const DEFAULT_LAB_DIR = '.hvlab'

/**
 * A file the lab rotates by size (shared/rotating-file.ts, pino-roll). On disk it is
 * `<dir>/<stem>.<n><ext>` with n counting up from 1: the highest n is the file being
 * written, the lower ones are the rotated files kept. This is the one place that names it.
 */
export interface RotatedFile {
  dir: string
  /** The name before the number, e.g. `host-a1` or `events`. */
  stem: string
  /** With its dot, e.g. `.log`. */
  ext: string
}

const rotatedFile = (dir: string, stem: string, ext: string): RotatedFile => ({ dir, stem, ext })

/** The number n of `name` when it is one of `f`'s files, else undefined. */
function rotationNumber(f: RotatedFile, name: string): number | undefined {
  if (!name.startsWith(f.stem + '.') || !name.endsWith(f.ext)) return undefined
  const n = name.slice(f.stem.length + 1, name.length - f.ext.length)
  return /^[0-9]{1,15}$/.test(n) ? Number(n) : undefined
}

/** The files of `f` on disk, oldest first: the last is the one being written. */
export function rotatedPaths(f: RotatedFile): string[] {
  let names: string[]
  try {
    names = readdirSync(f.dir)
  } catch {
    return []
  }
  return names
    .map((name) => ({ name, n: rotationNumber(f, name) }))
    .filter((x): x is { name: string; n: number } => x.n !== undefined)
    .sort((a, b) => a.n - b.n)
    .map((x) => join(f.dir, x.name))
}

/** Every process's log files in `logs` (the controller's too), rotated ones included; by name. */
function logFilesIn(logs: string): string[] {
  try {
    return readdirSync(logs)
      .filter((name) => /\.[0-9]{1,15}\.log$/.test(name))
      .sort()
      .map((name) => join(logs, name))
  } catch {
    return []
  }
}

export function labLayout(dir: string) {
  const root = resolve(dir)
  const logs = join(root, 'logs')
  const secret = join(root, 'secret')
  const pki = join(root, 'pki')
  return {
    root,
    /** The lab's shared secret, mode 0600: the proof of its own organisation's processes, and the CLI's token. */
    secret,
    /**
     * The secret of the processes of `organisation` (mode 0600): the lab's own is `secret`,
     * another organisation's is `pki/<organisation>.secret`, which the lab's own processes never read.
     */
    secretOf: (organisation: string) => (organisation === LAB_ORGANISATION ? secret : join(pki, `${organisation}.secret`)),
    /**
     * The lab's certificate authority and the certificates it issues, made at each `hvlab up`
     * (shared/pki/lab-pki.ts): `ca.crt`, `ca.key`, and `<process>.crt`, `<process>.key` in
     * `processes/`; every key mode 0600.
     */
    pki,
    caCert: join(pki, 'ca.crt'),
    caKey: join(pki, 'ca.key'),
    processCert: (name: string) => join(pki, 'processes', `${name}.crt`),
    processKey: (name: string) => join(pki, 'processes', `${name}.key`),
    /** Where the running controller listens: { pid, httpPort, peerPort }. */
    control: join(root, 'control.json'),
    /** The topology the lab was started with (a copy). */
    topology: join(root, 'topology.json'),
    /** The lab-wide timeline, one JSON event per line: `events.<n>.jsonl`, rotated. */
    events: rotatedFile(root, 'events', '.jsonl'),
    logs,
    data: join(root, 'data'),
    /** The last `hvlab cluster validate` report (HTML). */
    validationReport: join(root, 'cluster-validation.html'),
    /** The controller's own log (pino), rotated: `logs/controller.<n>.log`. */
    controllerLog: rotatedFile(logs, 'controller', '.log'),
    /** What a detached controller writes on its standard error (a crash's stack, before its log exists). */
    controllerStderr: join(logs, 'controller.log.stderr'),
    /** A lab process's log (pino), rotated: `logs/<name>.<n>.log`. */
    processLog: (name: string) => rotatedFile(logs, name, '.log'),
    processData: (name: string) => join(root, 'data', name),
    /** A host's journal of its VMs' disk writes (HVLAB_DISK_WRITE_JOURNAL=1; agent/vm/disk-write-journal.ts). */
    diskWriteJournal: (host: string) => join(root, 'data', host, 'disk-writes.jsonl'),
    /** Every log file of the lab now on disk, rotated ones included. */
    logFiles: () => logFilesIn(logs),
  }
}

export type LabLayout = ReturnType<typeof labLayout>
