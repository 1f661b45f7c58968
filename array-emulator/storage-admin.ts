/**
 * The array's management interface: one handler per storage admin request, answering
 * both the operator (the CLI, through the lab controller) and the cluster's hosts
 * (Cluster Extension provisions disks and runs failovers; CSV lists volumes).
 */
import type { LabProcess } from '../shared/lab-process.js'
import type { Message, MessageOf, MessageType } from '../shared/protocol/messages.js'
import type { PeerConnection } from '../shared/transport/peer-connection.js'

type AdminHandler<T extends MessageType> = (m: MessageOf<T>) => Promise<Message> | Message

export class StorageAdmin {
  private readonly hostHandlers: ((c: PeerConnection) => void)[] = []

  constructor(private readonly p: LabProcess) {}

  /** Answers requests of type `t` from the operator at once, and from hosts once `serveHosts` runs. */
  serve<T extends MessageType>(t: T, handler: AdminHandler<T>): void {
    this.p.serveOperator(t, handler)
    this.hostHandlers.push((c) => c.onRequest(t, async ({ message }) => ({ message: await handler(message) })))
  }

  /** Attaches every handler served so far to each host's connection, now and later. */
  serveHosts(): void {
    this.p.onPeer((c) => {
      if (c.remoteRole === 'host') for (const attach of this.hostHandlers) attach(c)
    })
  }
}
