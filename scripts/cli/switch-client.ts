/**
 * A client of the lab's virtual switch: a WebSocket to the controller's `/v1/switch` with
 * the lab's token (derived from the secret in the data dir, as the control client's). Sends `{t:'ping', vm, seq}`; every reply is parsed
 * and validated (zod) before it is handed on.
 */
import WebSocket from 'ws'
import { HvlabError, describeError } from '../../shared/errors.js'
import { switchReply, type SwitchReply } from '../../shared/protocol/guest-messages.js'
import { runningLab } from './control-client.js'

const CONNECT_TIMEOUT_MS = 5_000
const REPLY_BYTES_MAX = 4096

export class SwitchClient {
  private constructor(private readonly ws: WebSocket) {}

  /** Connects to the switch of the lab running in `dir`. */
  static async connect(dir: string, onReply: (r: SwitchReply) => void, onClose: (reason: string) => void): Promise<SwitchClient> {
    const { httpPort, authorization } = runningLab(dir)
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/v1/switch`, {
      headers: { authorization },
      maxPayload: REPLY_BYTES_MAX,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
    })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('unexpected-response', (_req, res) =>
        reject(
          new HvlabError('HVLAB_E_LAB', `the lab controller refused the switch connection: ${res.statusCode} ${res.statusMessage ?? ''}`),
        ),
      )
      ws.once('error', (e) =>
        reject(new HvlabError('HVLAB_E_LAB', `cannot reach the lab's virtual switch on port ${httpPort}: ${describeError(e)}`)),
      )
    })
    ws.on('message', (data, isBinary) => {
      let r: SwitchReply
      try {
        if (isBinary) throw new Error('binary frame')
        r = switchReply.parse(JSON.parse((data as Buffer).toString('utf8')))
      } catch (e) {
        ws.close(1008, 'bad reply')
        onClose(`the switch sent a bad reply: ${describeError(e)}`.slice(0, 200))
        return
      }
      onReply(r)
    })
    ws.on('close', (code, reason) => onClose(`the switch closed the connection (${code}${reason.length ? `: ${reason.toString()}` : ''})`))
    ws.on('error', () => {}) // the close that follows says what happened
    return new SwitchClient(ws)
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  ping(vm: string, seq: number): void {
    if (this.isOpen) this.ws.send(JSON.stringify({ t: 'ping', vm, seq }))
  }

  close(): void {
    this.ws.close(1000)
  }
}
