/**
 * Runs a lab controller: creates it, opens the control endpoint, writes the control
 * file the CLI finds it by, spawns the lab, and stops everything on SIGINT/SIGTERM or
 * `hvlab down`. Used by `hvlab up` in the foreground and by the detached controller.
 */
import { LabController } from './lab-controller.js'
import { startControlApi } from './control-api.js'

export interface RunningLab {
  controller: LabController
  httpPort: number
  /** Resolves once the lab has been stopped (by a signal, `hvlab down` or `stop()`). */
  stopped: Promise<void>
  stop(): Promise<void>
}

export async function runController(options: { dir: string; topologyFile?: string }): Promise<RunningLab> {
  const controller = await LabController.create(options)
  let resolveStopped!: () => void
  const stopped = new Promise<void>((r) => (resolveStopped = r))
  let stopping: Promise<void> | undefined
  const api = await startControlApi(controller, { log: controller.log, onDown: () => void stop() })
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await controller.down()
      await api.close()
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolveStopped()
    })()
    return stopping
  }
  const onSignal = (): void => void stop()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  controller.writeControlFile(api.port)
  controller.startAll()
  return { controller, httpPort: api.port, stopped, stop }
}
