/**
 * Runs a lab controller: creates it, opens the control endpoint, writes the control
 * file the CLI finds it by, spawns the lab, and stops everything on SIGINT/SIGTERM,
 * `hvlab down`, or when its error policy (error-policy.ts) gives up on repeated
 * unexpected errors. Used by `hvlab up` in the foreground and by the detached controller.
 */
import { describeError } from '../../shared/errors.js'
import { LabController } from './lab-controller.js'
import { startControlApi } from './control-api.js'
import { startControllerHealth } from './controller-health.js'
import { installErrorPolicy } from './error-policy.js'

/** How a lab ended: asked to stop (a signal, `hvlab down`, `stop()`), or aborted by the error policy. */
export type LabEnd = { aborted: false } | { aborted: true; reason: string }

export interface RunningLab {
  controller: LabController
  httpPort: number
  /** Resolves once the lab has been stopped; the process should exit 1 when it was aborted. */
  stopped: Promise<LabEnd>
  stop(): Promise<void>
}

export async function runController(options: { dir: string; topologyFile?: string }): Promise<RunningLab> {
  const controller = await LabController.create(options)
  let resolveStopped!: (end: LabEnd) => void
  const stopped = new Promise<LabEnd>((r) => (resolveStopped = r))
  let stopping: Promise<void> | undefined
  const api = await startControlApi(controller, { log: controller.log, onDown: () => void stop() })
  const health = await startControllerHealth({ topology: controller.topology, log: controller.log })
  controller.setHealth(health)
  const stopBecause = (end: LabEnd): Promise<void> => {
    stopping ??= (async () => {
      try {
        await controller.down()
        await api.close()
        await health.close()
      } catch (e) {
        controller.log.error({ err: describeError(e) }, 'the lab did not stop cleanly')
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
        removeErrorPolicy()
        resolveStopped(end)
      }
    })()
    return stopping
  }
  const stop = (): Promise<void> => stopBecause({ aborted: false })
  const onSignal = (): void => void stop()
  const removeErrorPolicy = installErrorPolicy({
    log: controller.log,
    record: (kind, details) => void controller.timeline.append({ at_ms: Date.now(), kind, source: 'lab', details }),
    abort: (reason) => void stopBecause({ aborted: true, reason }),
    exit: (code) => process.exit(code),
    now_ms: () => Date.now(),
    target: process,
  })
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  await controller.writeControlFile(api.port)
  controller.startAll()
  return { controller, httpPort: api.port, stopped, stop }
}
