/**
 * A replica server's end of one sender's connection, in process: requests go straight to
 * the handlers the server registered (ReplicaServer.servePrimary), and every message is
 * checked against its schema both ways, as the wire would.
 */
import { messageDef, type Message } from '../../shared/protocol/messages.js'

type Handler = (incoming: {
  message: Message
  attachment: Buffer
}) => Promise<{ message: Message; attachment?: Uint8Array }> | { message: Message; attachment?: Uint8Array }

export class Link {
  private readonly handlers = new Map<string, Handler>()
  constructor(readonly remoteName: string) {}
  onRequest(t: string, h: Handler): this {
    this.handlers.set(t, h)
    return this
  }
  async request(message: Message, options: { attachment?: Uint8Array } = {}): Promise<{ message: Message; attachment?: Uint8Array }> {
    messageDef(message.t)!.schema.parse(message)
    const reply = await this.handlers.get(message.t)!({ message, attachment: Buffer.from(options.attachment ?? new Uint8Array()) })
    messageDef(reply.message.t)!.schema.parse(reply.message)
    return reply
  }
}
