/**
 * How the CLI talks to a running lab: it finds the controller through the control file
 * in the data dir, and proves itself with a token derived from the lab's secret in the
 * same dir (never the secret itself). A data dir another user owns or may write is not
 * trusted (HVLAB_E_UNSAFE_DIR): its control file could point the token anywhere.
 */
import { readFileSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { HvlabError, asErrorCode, describeError } from '../../shared/errors.js'
import { httpAuthorization } from '../../shared/http-bearer.js'
import { checkLabDir } from '../../shared/lab-dir.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { Message, MessageOf, MessageType } from '../../shared/protocol/messages.js'
import type { Role } from '../../shared/protocol/runtime-messages.js'
import { readRunningControl } from '../controller/control-file.js'

/** Where the lab running in `dir` listens and the Authorization header it takes; throws HVLAB_E_LAB with what to do when there is none. */
export function runningLab(dir: string): { httpPort: number; authorization: string } {
  const layout = labLayout(dir)
  checkLabDir(layout.root)
  const control = readRunningControl(layout)
  if (!control)
    throw new HvlabError(
      'HVLAB_E_LAB',
      `no lab is running in ${layout.root}; start one with \`hvlab up --detach --dir ${dir}\` (or pass the --dir of a running lab)`,
    )
  let secret: string
  try {
    secret = readFileSync(layout.secret, 'utf8').trim()
  } catch (e) {
    throw new HvlabError('HVLAB_E_LAB', `cannot read the lab secret ${layout.secret}: ${describeError(e)}`)
  }
  return { httpPort: control.httpPort, authorization: httpAuthorization(secret) }
}

export class ControlClient {
  private constructor(
    private readonly base: string,
    private readonly auth: string,
  ) {}

  static forDir(dir: string): ControlClient {
    const lab = runningLab(dir)
    return new ControlClient(`http://127.0.0.1:${lab.httpPort}`, lab.authorization)
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path)
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body)
  }

  /**
   * Sends a request message to one lab process through the controller; returns its reply.
   * A bad field, or a process of the wrong kind, is a usage error in the user's words (request-words.ts).
   * The wire protocol's schemas (and zod) load here, on the first request: a command that only
   * reads the controller's own answers (`hvlab status`) starts without them.
   */
  async request<T extends MessageType>(process: string, message: Message, expect: T, timeout_ms?: number): Promise<MessageOf<T>> {
    const { checkOutgoingRequest, wrongProcessError } = await import('./request-words.js')
    checkOutgoingRequest(message)
    let reply: Message
    try {
      ;({ message: reply } = await this.post<{ message: Message }>(`/v1/processes/${encodeURIComponent(process)}/request`, {
        message,
        ...(timeout_ms ? { timeout_ms } : {}),
      }))
    } catch (e) {
      if (!(e instanceof HvlabError) || (e.detail !== 'HVLAB_E_WRONG_PROCESS' && e.code !== 'HVLAB_E_UNSUPPORTED')) throw e
      const lab = await this.get<{ processes: { name: string; role: Role }[] }>('/v1/status').catch(() => undefined)
      throw wrongProcessError(process, message.t, lab?.processes) ?? e
    }
    if (reply.t !== expect) throw new HvlabError('HVLAB_E_PROTOCOL', `${process} answered ${reply.t}, expected ${expect}`)
    return reply as MessageOf<T>
  }

  /**
   * Streams NDJSON lines from `path` to `onLine` until the lab closes it or `signal` aborts.
   * A line `{"error":{code,message}}` is the lab ending the stream (a follower cut off): thrown.
   */
  async stream(path: string, onLine: (value: unknown) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, undefined, signal)
    let pending = ''
    res.setEncoding('utf8')
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        pending += chunk
        let nl: number
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          if (line.trim()) onLine(streamValue(line))
        }
      }
    } catch (e) {
      if (signal?.aborted) return
      if (e instanceof HvlabError) throw e
      throw new HvlabError('HVLAB_E_LAB', `the lab stopped sending events: ${describeError(e)}`)
    }
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body)
    return JSON.parse(await readBody(res)) as T
  }

  /**
   * One request to the controller (node:http: loading fetch's undici would cost a CLI run
   * about 50 ms). Resolves with a 2xx response; a refusal is thrown as the HvlabError it names.
   */
  private async send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    let res: IncomingMessage
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest(this.base + path, {
          method,
          headers: { authorization: this.auth, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(signal ? { signal } : {}),
        })
        req.once('response', resolve)
        req.once('error', reject)
        req.end(payload)
      })
    } catch (e) {
      throw new HvlabError('HVLAB_E_LAB', `cannot reach the lab controller at ${this.base}: ${describeError(e)}`)
    }
    const status = res.statusCode ?? 0
    if (status >= 200 && status < 300) return res
    let err: { error?: { code?: string; message?: string; origin?: string; detail?: string } } = {}
    try {
      err = JSON.parse(await readBody(res)) as typeof err
    } catch {
      // not JSON: fall through to the status line
    }
    const origin = typeof err.error?.origin === 'string' ? { origin: err.error.origin } : {}
    throw new HvlabError(
      asErrorCode(err.error?.detail ?? '', asErrorCode(err.error?.code ?? '')),
      err.error?.message ?? `the lab answered ${status} ${res.statusMessage ?? ''}`,
      origin,
    )
  }
}

/** A whole response body as text. */
async function readBody(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8')
  let text = ''
  for await (const chunk of res as AsyncIterable<string>) text += chunk
  return text
}

/** One line of an NDJSON stream; the lab's error line is thrown as the HvlabError it names. */
function streamValue(line: string): unknown {
  const value = JSON.parse(line) as { seq?: unknown; error?: { code?: unknown; message?: unknown } } | null
  const error = value?.seq === undefined ? value?.error : undefined
  if (error && typeof error === 'object') throw new HvlabError(asErrorCode(String(error.code)), String(error.message))
  return value
}
