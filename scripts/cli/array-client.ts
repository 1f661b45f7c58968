/**
 * How the storage commands reach the arrays: a request to one array process, relayed by
 * the lab controller (the array checks it and answers, or refuses with a message that
 * says what to do), and the names of the lab's arrays.
 */
import type { Message, MessageType } from '../../shared/protocol/messages.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { ControlClient } from './control-client.js'

/** The options every storage command takes. */
export interface DirOpt {
  dir: string
}
export interface JsonOpt extends DirOpt {
  json?: boolean
}

/** Sends `message` to `array` and returns its `expect` reply. */
export function ask<T extends MessageType>(o: DirOpt, array: string, message: Message, expect: T, timeout_ms?: number) {
  return ControlClient.forDir(o.dir).request(array, message, expect, timeout_ms)
}

/** The lab's arrays, as its status lists them. */
export async function arraysOf(o: DirOpt): Promise<string[]> {
  const s = await ControlClient.forDir(o.dir).get<LabStatus>('/v1/status')
  return s.processes.filter((p) => p.role === 'array').map((p) => p.name)
}
