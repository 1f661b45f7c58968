import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { RealClock } from '../../shared/clock.js'
import { createLogger } from '../../shared/log.js'
import { listenHttp } from '../../shared/http-listen.js'
import { attachSwitchPort } from '../../scripts/controller/switch-port.js'
import { VirtualSwitch } from '../../scripts/controller/virtual-switch.js'

const SECRET = 'Bearer s3cret'

const setup = async (t: { teardown(fn: () => unknown): void }) => {
  const sw = new VirtualSwitch({
    clock: new RealClock(),
    forward: async (host, ping) => ({ t: 'guest-pong', vm: ping.vm, seq: ping.seq, value: ping.seq + 1, host }),
  })
  sw.announce('web1', 'host-a1')
  const server = createServer((_req, res) => res.end())
  const log = createLogger({ name: 'test', level: 'silent' })
  const port = attachSwitchPort(server, sw, { authorized: (req: IncomingMessage) => req.headers.authorization === SECRET, log })
  const l = await listenHttp(server, { log })
  t.teardown(async () => {
    port.close()
    await l.close()
  })
  return { url: `ws://127.0.0.1:${l.port}/v1/switch`, base: `ws://127.0.0.1:${l.port}` }
}

const open = (url: string, auth = SECRET) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: auth } })
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_q, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.once('error', reject)
  })
const next = (ws: WebSocket) => new Promise<unknown>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))))
const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  )

t.test('a client with the secret pings through the switch', async (t) => {
  const { url } = await setup(t)
  const ws = await open(url)
  const reply = next(ws)
  ws.send(JSON.stringify({ t: 'ping', vm: 'web1', seq: 7 }))
  t.same(await reply, { t: 'pong', vm: 'web1', seq: 7, value: 8, host: 'host-a1' })
  const r2 = next(ws)
  ws.send(JSON.stringify({ t: 'ping', vm: 'nosuch', seq: 8 }))
  t.match(await r2, { t: 'unreachable', seq: 8, reason: /no such address/ })
  ws.close()
})

t.test('without the secret, or on another path, the upgrade is refused', async (t) => {
  const { url, base } = await setup(t)
  await t.rejects(open(url, 'Bearer wrong'), /status 401/)
  await t.rejects(open(`${base}/v1/other`), /status 404/)
})

t.test('a bad frame closes only that client', async (t) => {
  const { url } = await setup(t)
  const good = await open(url)
  const bad = await open(url)
  const gone = closed(bad)
  bad.send(JSON.stringify({ t: 'ping', vm: 'web1', seq: -1 }))
  const c = await gone
  t.equal(c.code, 1008)
  t.match(c.reason, /bad frame/)
  const bad2 = await open(url)
  const gone2 = closed(bad2)
  bad2.send('{not json')
  t.equal((await gone2).code, 1008, 'not JSON: closed too')
  const bad3 = await open(url)
  const gone3 = closed(bad3)
  bad3.send('x'.repeat(5000))
  t.not((await gone3).code, 1000, 'an oversize frame is refused')
  const reply = next(good)
  good.send(JSON.stringify({ t: 'ping', vm: 'web1', seq: 1 }))
  t.match(await reply, { t: 'pong', seq: 1 }, 'the other client is still served')
  good.close()
})
