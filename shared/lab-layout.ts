/**
 * Where a lab keeps its state inside its data dir (default `./.hvlab`): the secret,
 * the control endpoint, each process's log and data, the timeline.
 */
import { join, resolve } from 'node:path'

export const DEFAULT_LAB_DIR = '.hvlab'

export function labLayout(dir: string) {
  const root = resolve(dir)
  return {
    root,
    /** The lab's shared secret, mode 0600. */
    secret: join(root, 'secret'),
    /** Where the running controller listens: { pid, httpPort, peerPort }. */
    control: join(root, 'control.json'),
    /** The topology the lab was started with (a copy). */
    topology: join(root, 'topology.json'),
    /** The lab-wide timeline, one JSON event per line. */
    events: join(root, 'events.jsonl'),
    logs: join(root, 'logs'),
    data: join(root, 'data'),
    controllerLog: join(root, 'logs', 'controller.log'),
    processLog: (name: string) => join(root, 'logs', `${name}.log`),
    processData: (name: string) => join(root, 'data', name),
  }
}

export type LabLayout = ReturnType<typeof labLayout>
