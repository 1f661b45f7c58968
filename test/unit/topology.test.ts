import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HvlabError } from '../../shared/errors.js'
import { jsonSyntaxErrorOffset, positionOf } from '../../shared/json-syntax.js'
import {
  DEFAULT_TOPOLOGY_FILE,
  LIMITS_DEFAULT,
  dials,
  loadTopology,
  parseTopology,
  peersOf,
  processSpec,
  organisationsOf,
  processesOf,
  recoveryPointEveryMsOf,
  type Topology,
} from '../../shared/topology.js'

/** A valid three-site topology as raw JSON, to break one field at a time. */
function validRaw(): Record<string, unknown> {
  return {
    name: 'test-lab',
    sites: [{ name: 'site-a' }, { name: 'site-b' }, { name: 'site-c' }],
    hosts: [
      { name: 'host-a1', site: 'site-a' },
      { name: 'host-b1', site: 'site-b' },
    ],
    arrays: [
      { name: 'array-a', site: 'site-a' },
      { name: 'array-b', site: 'site-b' },
    ],
    witness: { name: 'witness', site: 'site-c' },
    quorum: { model: 'node-and-file-share-majority' },
  }
}

const dir = mkdtempSync(join(tmpdir(), 'hvlab-topology-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let fileSeq = 0

function writeTopology(content: string): string {
  const file = join(dir, `topology-${++fileSeq}.json`)
  writeFileSync(file, content)
  return file
}

/** Loads `raw` from a real file and asserts a topology error naming the file and `mentions`. */
function rejects(t: Asserts, raw: unknown, mentions: (string | RegExp)[], what: string): void {
  const file = writeTopology(JSON.stringify(raw))
  let caught: unknown
  try {
    loadTopology(file)
  } catch (e) {
    caught = e
  }
  t.ok(caught instanceof HvlabError, `${what}: throws an HvlabError`)
  const err = caught as HvlabError
  t.equal(err.code, 'HVLAB_E_TOPOLOGY', `${what}: code`)
  t.match(err.message, file, `${what}: names the file`)
  for (const m of mentions) t.match(err.message, m, `${what}: mentions ${String(m)}`)
}

/** The few assertions `rejects` uses, so it takes any tap test. */
interface Asserts {
  ok(value: unknown, message: string): boolean
  equal(found: unknown, wanted: unknown, message: string): boolean
  match(found: unknown, pattern: string | RegExp, message: string): boolean
}

t.test('the default topology loads', async (t) => {
  const topo = loadTopology()
  t.equal(topo.name, 'two-site')
  t.equal(topo.quorum.model, 'node-and-file-share-majority')
  t.same(
    processesOf(topo).map((p) => `${p.role}:${p.name}@${p.site}`),
    [
      'host:host-a1@site-a',
      'host:host-a2@site-a',
      'host:host-b1@site-b',
      'host:host-b2@site-b',
      'witness:witness@site-c',
      'array:array-a@site-a',
      'array:array-b@site-b',
    ],
    'hosts first, then the witness, then arrays',
  )
  t.same(loadTopology(DEFAULT_TOPOLOGY_FILE), topo, 'DEFAULT_TOPOLOGY_FILE is the default')
})

t.test('defaults are filled in', async (t) => {
  const topo = parseTopology({ name: 'tiny', sites: [{ name: 's' }], hosts: [{ name: 'h1', site: 's' }] })
  t.same(topo.arrays, [])
  t.equal(topo.witness, undefined)
  t.same(topo.quorum, { model: 'node-majority', dynamicQuorum: true, dynamicWitness: true })
  t.equal(topo.hosts[0]?.memory_mib, 8192)
  t.equal(topo.timeScale, 1)
  t.ok(topo.heartbeat.sameSite.interval_ms > 0)
  t.same(topo.limits, LIMITS_DEFAULT, 'every limit at its default')
  const some = parseTopology({
    name: 'tiny',
    sites: [{ name: 's' }],
    hosts: [{ name: 'h1', site: 's' }],
    limits: { migrations_per_host: 4 },
  })
  t.same(some.limits, { ...LIMITS_DEFAULT, migrations_per_host: 4 }, 'a limit given, the others at their defaults')
})

t.test('a valid non-default topology loads from a file', async (t) => {
  const topo = loadTopology(writeTopology(JSON.stringify(validRaw())))
  t.equal(topo.name, 'test-lab')
  t.equal(topo.witness?.site, 'site-c')
})

t.test('validation errors name the file and the field', async (t) => {
  const raw = validRaw
  rejects(
    t,
    { ...raw(), hosts: [{ name: 'host-a1', site: 'site-z' }] },
    ['host-a1', 'unknown site site-z', 'site-a'],
    'host in an unknown site',
  )
  rejects(
    t,
    { ...raw(), arrays: [{ name: 'array-z', site: 'site-z' }] },
    ['array array-z', 'unknown site site-z'],
    'array in an unknown site',
  )
  rejects(
    t,
    { ...raw(), witness: { name: 'witness', site: 'nowhere' } },
    ['witness witness', 'unknown site nowhere'],
    'witness in an unknown site',
  )
  rejects(
    t,
    {
      ...raw(),
      hosts: [
        { name: 'host-a1', site: 'site-a' },
        { name: 'host-a1', site: 'site-b' },
      ],
    },
    ['host-a1', 'more than one process'],
    'duplicate host name',
  )
  rejects(t, { ...raw(), arrays: [{ name: 'host-a1', site: 'site-a' }] }, ['host-a1', 'more than one process'], 'array named like a host')
  rejects(
    t,
    { ...raw(), witness: { name: 'array-a', site: 'site-c' } },
    ['array-a', 'more than one process'],
    'witness named like an array',
  )
  rejects(
    t,
    { ...raw(), sites: [{ name: 'site-a' }, { name: 'site-b' }, { name: 'site-c' }, { name: 'site-b' }] },
    ['site site-b is declared twice'],
    'duplicate site',
  )
  const { witness: _w, ...noWitness } = raw()
  rejects(t, noWitness, ['node-and-file-share-majority', 'witness'], 'witness missing for node-and-file-share-majority')
  rejects(t, { ...raw(), quorum: { model: 'node-majority' } }, ['witness', 'node-majority'], 'witness declared with node-majority')
  rejects(
    t,
    { ...raw(), witness: { name: 'witness', site: 'site-a' } },
    ['witness shares site site-a with hosts'],
    'witness sharing a site with hosts',
  )
})

t.test('schema errors name the field path', async (t) => {
  const raw = validRaw
  rejects(
    t,
    { ...raw(), hosts: [{ name: 'host-a1', site: 'site-a', memory_mib: '8192' }] },
    ['hosts[host-a1].memory_mib'],
    'memory_mib as a string',
  )
  rejects(t, { ...raw(), hosts: 'host-a1' }, [/\bhosts\b/], 'hosts not an array')
  rejects(t, { ...raw(), hosts: [] }, [/\bhosts\b/], 'no hosts')
  rejects(t, { ...raw(), timeScale: 2 }, ['timeScale'], 'timeScale above 1')
  rejects(t, { ...raw(), timeScale: 0 }, ['timeScale'], 'timeScale of 0')
  rejects(t, { ...raw(), limits: { migrations_per_host: 0 } }, ['limits.migrations_per_host'], 'no migrations at all')
  rejects(t, { ...raw(), limits: { resync_groups_per_array: 1000 } }, ['limits.resync_groups_per_array'], 'resync limit too high')
  rejects(t, { ...raw(), limits: { page_diff_threads: 1.5 } }, ['limits.page_diff_threads'], 'threads not an integer')
  rejects(t, { ...raw(), limits: { migration_per_host: 3 } }, ['migration_per_host'], 'a misspelt limit')
  rejects(t, { ...raw(), quorum: { model: 'majority-of-vibes' } }, ['quorum.model'], 'unknown quorum model')
  rejects(
    t,
    { ...raw(), heartbeat: { sameSite: { interval_ms: 1, missed_max: 3 }, crossSite: { interval_ms: 1000, missed_max: 3 } } },
    ['heartbeat.sameSite.interval_ms'],
    'heartbeat too fast',
  )
  rejects(t, { ...raw(), network: { wan: { loss: 0.9 } } }, ['network.wan.loss'], 'a loss beyond the bound')
  rejects(t, { ...raw(), network: { wan: { latency_ms: -5 } } }, ['network.wan.latency_ms'], 'a negative latency')
  rejects(t, { ...raw(), network: { metro: {} } }, ['metro'], 'a profile of an unknown kind')
  t.same(parseTopology({ ...raw(), network: { wan: { latency_ms: 20, mbit: 100 } } }).network, {
    wan: { latency_ms: 20, jitter_ms: 0, mbit: 100, loss: 0 },
  })
  rejects(t, { ...raw(), name: 42 }, [/\bname\b/], 'name as a number')
  rejects(t, [raw()], ['(top level)'], 'an array instead of an object')
  rejects(t, null, ['(top level)'], 'null')
})

t.test('unknown fields are refused, wherever they are', async (t) => {
  rejects(t, { ...validRaw(), colour: 'blue' }, ['colour'], 'extra top-level field')
  rejects(
    t,
    { ...validRaw(), hosts: [{ name: 'host-a1', site: 'site-a', cpus: 4 }] },
    ['hosts[host-a1]: unrecognized key cpus'],
    'extra host field',
  )
  rejects(
    t,
    { ...validRaw(), quorum: { model: 'node-and-file-share-majority', dynamicQuorm: true } },
    ['quorum', 'dynamicQuorm'],
    'misspelt quorum field',
  )
})

t.test('bad names are refused', async (t) => {
  rejects(t, { ...validRaw(), hosts: [{ name: 'Host-A1', site: 'site-a' }] }, ['hosts[Host-A1].name', 'a-z'], 'upper case')
  rejects(t, { ...validRaw(), hosts: [{ name: '-host', site: 'site-a' }] }, ['hosts[0].name'], 'leading dash')
  rejects(t, { ...validRaw(), hosts: [{ name: 'host a1', site: 'site-a' }] }, ['hosts[0].name'], 'space')
  rejects(t, { ...validRaw(), hosts: [{ name: '', site: 'site-a' }] }, ['hosts[0].name'], 'empty')
  rejects(t, { ...validRaw(), hosts: [{ name: 'h'.repeat(64), site: 'site-a' }] }, ['hosts[0].name'], 'too long')
  rejects(t, { ...validRaw(), sites: [{ name: 'site/a' }] }, ['sites[0].name'], 'slash in a site name')
})

t.test('bad JSON and a missing file', async (t) => {
  const bad = writeTopology('{ "name": "x", ')
  t.throws(() => loadTopology(bad), {
    name: 'HvlabError',
    code: 'HVLAB_E_TOPOLOGY',
    message: new RegExp(`${escape(bad)} is not valid JSON`),
  })
  const missing = join(dir, 'no-such-topology.json')
  t.throws(() => loadTopology(missing), {
    name: 'HvlabError',
    code: 'HVLAB_E_TOPOLOGY',
    message: new RegExp(`cannot read topology file ${escape(missing)}`),
  })
})

t.test('parseTopology names its source', async (t) => {
  t.throws(() => parseTopology({ name: 'x' }, 'my-lab.json'), {
    code: 'HVLAB_E_TOPOLOGY',
    message: /^my-lab\.json: 2 problems [^]*\n  - sites: /,
  })
  t.throws(() => parseTopology({ ...validRaw(), name: 7 }, 'one.json'), {
    message: /^one\.json: name: [^\n]*; see topologies\/two-site\.json/,
  })
})

t.test('processSpec finds a process or says which exist', async (t) => {
  const topo = loadTopology()
  t.same(processSpec(topo, 'array-b'), { name: 'array-b', role: 'array', site: 'site-b', organisation: 'lab', cluster: 'main' })
  t.throws(() => processSpec(topo, 'host-z9'), { code: 'HVLAB_E_NOT_FOUND', message: /host-z9.*known: host-a1, .*array-b/ })
})

t.test('who talks to whom', async (t) => {
  const topo = loadTopology()
  const names = (name: string) => peersOf(topo, name).map((p) => p.name)
  t.same(names('host-a1'), ['host-a2', 'host-b1', 'host-b2', 'witness', 'array-a', 'array-b'], 'a host talks to everyone else')
  t.same(names('array-a'), ['host-a1', 'host-a2', 'host-b1', 'host-b2', 'array-b'], 'an array talks to hosts and arrays')
  t.same(names('witness'), ['host-a1', 'host-a2', 'host-b1', 'host-b2'], 'the witness talks only to hosts')
  t.throws(() => peersOf(topo, 'nobody'), { code: 'HVLAB_E_NOT_FOUND' })

  // Talking is symmetric, and nobody talks to itself.
  for (const p of processesOf(topo)) {
    t.notOk(names(p.name).includes(p.name), `${p.name} is not its own peer`)
    for (const q of names(p.name)) t.ok(names(q).includes(p.name), `${p.name} -> ${q} is mutual`)
  }
})

t.test('exactly one side dials each pair', async (t) => {
  const topo: Topology = loadTopology()
  for (const p of processesOf(topo)) {
    for (const q of peersOf(topo, p.name)) {
      t.not(dials(p.name, q.name), dials(q.name, p.name), `${p.name} / ${q.name}`)
    }
  }
  t.equal(dials('array-a', 'host-a1'), true)
  t.equal(dials('host-a1', 'array-a'), false)
})

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

t.test('every problem at once, list items named by their name', async (t) => {
  const raw = {
    ...validRaw(),
    hosts: [
      { name: 'host-a1', site: 'site-a', memroy_mib: 4096 },
      { name: 'host-b1', site: 'site-b', memory_mib: 'lots' },
    ],
    timeScale: 5,
  }
  let caught: HvlabError | undefined
  try {
    parseTopology(raw, 'lab.json')
  } catch (e) {
    caught = e as HvlabError
  }
  t.equal(caught?.code, 'HVLAB_E_TOPOLOGY')
  const lines = caught?.message.split('\n') ?? []
  t.match(lines[0], /^lab\.json: 3 problems \(see topologies\/two-site\.json for a valid example\):$/)
  t.match(caught?.message, /^  - hosts\[host-a1\]: unrecognized key memroy_mib /m)
  t.match(caught?.message, /^  - hosts\[host-b1\]\.memory_mib: /m)
  t.match(caught?.message, /^  - timeScale: /m)
  const crossField = {
    ...validRaw(),
    sites: [{ name: 'site-a' }, { name: 'site-a' }, { name: 'site-c' }],
    witness: { name: 'witness', site: 'site-a' },
  }
  t.throws(() => parseTopology(crossField, 'x.json'), {
    message:
      /^x\.json: \d problems[^]*site site-a is declared twice[^]*host host-b1 is in unknown site site-b[^]*witness shares site site-a/,
  })
})

t.test('a JSON syntax error carries its line and column', async (t) => {
  const file = writeTopology('{\n  "name": "x",\n  "sites": [ { "name": "s" } ]\n  "hosts": []\n}\n')
  t.throws(() => loadTopology(file), {
    code: 'HVLAB_E_TOPOLOGY',
    message: new RegExp(`${escape(file)} is not valid JSON at line 4, column 3: `),
  })
  const cases: [string, number | undefined][] = [
    ['{"a": [1, 2, 3], "b": {"c": "d\\n"}, "e": -1.5e3, "f": true, "g": null}', undefined],
    ['{"a": 1,}', 8],
    ['[1 2]', 3],
    ['{"a": tru}', 6],
    ['"unterminated', 13],
    ['{"a": 1} x', 9],
    ['', 0],
    ['{"a": 01}', 7],
    ['{"a": "tab\there"}', 10],
  ]
  for (const [text, offset] of cases) t.equal(jsonSyntaxErrorOffset(text), offset, JSON.stringify(text))
  t.same(positionOf('ab\ncd\nef', 7), { line: 3, column: 2 })
})

t.test('schema and cross-field problems are reported together, in one pass', async (t) => {
  const raw = {
    ...validRaw(),
    hosts: [
      { name: 'host-a1', site: 'site-a', memory_mib: 'lots' },
      { name: 'host-a1', site: 'site-z' },
    ],
    witness: { name: 'witness', site: 'site-a' },
    timeScale: 5,
  }
  const file = writeTopology(JSON.stringify(raw))
  let caught: HvlabError | undefined
  try {
    loadTopology(file)
  } catch (e) {
    caught = e as HvlabError
  }
  t.equal(caught?.code, 'HVLAB_E_TOPOLOGY', 'the loader refuses the file')
  const problems = (caught?.message.split('\n') ?? []).slice(1)
  t.match(caught?.message, new RegExp(`^${escape(file)}: 5 problems \\(see topologies/two-site\\.json for a valid example\\):\\n`))
  t.same(
    problems.map((p) => p.replace(/^ {2}- ([^:; ]+).*$/, '$1')),
    ['hosts[host-a1].memory_mib', 'timeScale', 'the', 'host', 'the'],
    'schema problems first, then the cross-field ones',
  )
  t.match(problems[2], /the name host-a1 is used by more than one process/)
  t.match(problems[3], /host host-a1 is in unknown site site-z; declare it under "sites" \(known: site-a, site-b, site-c\)/)
  t.match(problems[4], /the witness shares site site-a with hosts/)
})

t.test('one problem of either kind keeps the one-line message', async (t) => {
  t.throws(() => parseTopology({ ...validRaw(), timeScale: 5, quorum: { model: 'node-and-file-share-majority' } }, 'a.json'), {
    message: /^a\.json: timeScale: [^\n]*; see topologies\/two-site\.json for a valid example$/,
  })
  t.throws(() => parseTopology({ ...validRaw(), quorum: { model: 'node-majority' } }, 'b.json'), {
    message: /^b\.json: a witness is declared but the quorum model is node-majority; [^\n]*; see topologies\/two-site\.json/,
  })
})

t.test('cross-field rules skip the parts the schema already refuses', async (t) => {
  const problemsOf = (raw: unknown): string[] => {
    try {
      parseTopology(raw, 'p.json')
    } catch (e) {
      const message = (e as HvlabError).message
      return message.includes('\n') ? message.split('\n').slice(1) : [message]
    }
    return []
  }
  const badHostName = problemsOf({ ...validRaw(), hosts: [{ name: 'Host A', site: 'site-z' }] })
  t.equal(badHostName.length, 1, 'a host with a bad name is only a schema problem')
  t.match(badHostName[0], /hosts\[0\]\.name: /)
  const unnamedSite = problemsOf({
    ...validRaw(),
    sites: [{ name: 'site-a' }, { nam: 'site-b' }, { name: 'site-c' }],
  })
  t.notOk(
    unnamedSite.some((p) => p.includes('unknown site')),
    'with a site unnamed, no process is called unknown-sited',
  )
  t.ok(
    unnamedSite.some((p) => p.includes('sites[1]')),
    'the unnamed site itself is reported',
  )
  const badModel = problemsOf({ ...validRaw(), quorum: { model: 'majority-of-vibes' }, hosts: [{ name: 'host-a1', site: 'site-x' }] })
  t.equal(badModel.length, 2, 'an unknown quorum model: its schema problem and the unknown site, no witness rule')
  t.match(badModel[0], /quorum\.model: /)
  t.match(badModel[1], /host host-a1 is in unknown site site-x/)
  t.same(problemsOf('not a topology').length, 1, 'a file that is not an object: the schema says so, once')
  t.same(problemsOf(validRaw()), [], 'a valid topology has no problems')
})

t.test(
  'topologies/scale-16.json: 8 hosts and an array in each of two sites, the witness alone in a third, within every limit',
  async (t) => {
    const topology = loadTopology(new URL('../../topologies/scale-16.json', import.meta.url).pathname)
    const hostsIn = (site: string): number => topology.hosts.filter((h) => h.site === site).length
    t.same([hostsIn('site-a'), hostsIn('site-b'), hostsIn('site-c')], [8, 8, 0], 'eight hosts in each data centre, none with the witness')
    t.same(
      topology.arrays.map((a) => a.site),
      ['site-a', 'site-b'],
      'one array per data centre',
    )
    t.equal(topology.witness?.site, 'site-c')
    t.equal(topology.quorum.model, 'node-and-file-share-majority')
    t.equal(processesOf(topology).length, 19)
    const connections = peersOf(topology, 'host-a1').length + 1 // its peers and the controller
    t.ok(connections <= topology.limits.peer_connections_max, `a host's ${connections} connections fit peer_connections_max`)
    t.ok(
      peersOf(topology, 'host-a1').length <= topology.limits.unauthenticated_connections_max,
      'every peer of a host may be in its handshake at once (the lab starts them all together)',
    )
  },
)

/** validRaw() with standalone hosts: Hyper-V hosts outside the cluster, in a DR site of their own. */
function withStandalone(...standalone_hosts: unknown[]): Record<string, unknown> {
  const raw = validRaw()
  return { ...raw, sites: [...(raw.sites as unknown[]), { name: 'site-dr' }], standalone_hosts }
}

t.test('topologies/two-site-dr.json: the default lab plus two standalone replica servers in a DR site', async (t) => {
  const dr = loadTopology(new URL('../../topologies/two-site-dr.json', import.meta.url).pathname)
  const base = loadTopology()
  t.equal(dr.name, 'two-site-dr')
  t.same(dr.hosts, base.hosts, 'the cluster is the default lab’s: hosts holds its members only')
  t.same(dr.standalone_hosts, [
    { name: 'replica-dr1', site: 'site-dr', memory_mib: 8192 },
    { name: 'replica-dr2', site: 'site-dr', memory_mib: 8192, organisation: 'hoster' },
  ])
  t.match(dr.sites.find((s) => s.name === 'site-dr')?.description, /disaster-recovery site.*not cluster members/)
  t.same(
    processesOf(dr).map((p) => `${p.role}:${p.name}@${p.site}`),
    [...processesOf(base).map((p) => `${p.role}:${p.name}@${p.site}`), 'standalone:replica-dr1@site-dr', 'standalone:replica-dr2@site-dr'],
    'the default lab’s processes in their order, the standalone hosts last',
  )
  t.same(processSpec(dr, 'replica-dr1'), { name: 'replica-dr1', role: 'standalone', site: 'site-dr', organisation: 'lab', cluster: null })
})

t.test('standalone hosts: optional, memory as a host’s, at most 8, names of their own', async (t) => {
  t.same(parseTopology(validRaw()).standalone_hosts, [], 'none when left out')
  t.same(parseTopology(withStandalone({ name: 'replica-dr1', site: 'site-dr' })).standalone_hosts, [
    { name: 'replica-dr1', site: 'site-dr', memory_mib: 8192 },
  ])
  const nine = Array.from({ length: 9 }, (_, i) => ({ name: `replica-dr${i + 1}`, site: 'site-dr' }))
  rejects(t, withStandalone(...nine), [/\bstandalone_hosts\b/, /8/], 'nine standalone hosts')
  t.equal(parseTopology(withStandalone(...nine.slice(0, 8))).standalone_hosts.length, 8, 'eight are fine')
  rejects(
    t,
    withStandalone({ name: 'replica-dr1', site: 'site-dr', memory_mib: 32 }),
    ['standalone_hosts[replica-dr1].memory_mib'],
    'less memory than a host may have',
  )
  rejects(
    t,
    withStandalone({ name: 'replica-dr1', site: 'site-dr', cluster: true }),
    ['standalone_hosts[replica-dr1]: unrecognized key cluster'],
    'an unknown field',
  )
})

t.test(
  'recovery_point_every_ms: a Hyper-V host’s lab acceleration of the recovery points of replicas it holds, 1 s to 1 h, absent by default',
  async (t) => {
    const fast = parseTopology(withStandalone({ name: 'replica-dr1', site: 'site-dr', recovery_point_every_ms: 6000 }))
    t.equal(fast.standalone_hosts[0]?.recovery_point_every_ms, 6000)
    t.equal(parseTopology(withStandalone({ name: 'replica-dr1', site: 'site-dr' })).standalone_hosts[0]?.recovery_point_every_ms, undefined)
    for (const bad of [999, 3_600_001, 1500.5, '6000'])
      rejects(
        t,
        withStandalone({ name: 'replica-dr1', site: 'site-dr', recovery_point_every_ms: bad }),
        ['standalone_hosts[replica-dr1].recovery_point_every_ms'],
        `recovery_point_every_ms ${JSON.stringify(bad)}`,
      )
    const raw = validRaw()
    const hosts = (raw.hosts as Record<string, unknown>[]).map((h, i) => (i === 0 ? { ...h, recovery_point_every_ms: 6000 } : h))
    const member = parseTopology({ ...raw, hosts })
    t.equal(member.hosts[0]?.recovery_point_every_ms, 6000, 'a cluster host’s too: it holds replicas of another cluster’s VMs')
    t.equal(recoveryPointEveryMsOf(member, member.hosts[0]!.name), 6000)
    t.equal(recoveryPointEveryMsOf(member, member.cluster_name), 6000, 'a cluster’s: its first member’s')
    t.equal(recoveryPointEveryMsOf(member, member.hosts[1]!.name), undefined, 'hourly where it is not set')
    t.equal(recoveryPointEveryMsOf(fast, 'replica-dr1'), 6000)
    t.equal(recoveryPointEveryMsOf(fast, 'nowhere'), undefined)
  },
)

t.test('organisation: a standalone host of another organisation (a hosting provider); absent, the lab’s own', async (t) => {
  const lab = parseTopology(
    withStandalone({ name: 'replica-dr1', site: 'site-dr' }, { name: 'replica-dr2', site: 'site-dr', organisation: 'hoster' }),
  )
  t.same(
    processesOf(lab)
      .map((p) => `${p.name}:${p.organisation}`)
      .slice(-3),
    ['array-b:lab', 'replica-dr1:lab', 'replica-dr2:hoster'],
    'every other process is the lab’s',
  )
  t.same(organisationsOf(lab), ['lab', 'hoster'])
  for (const bad of ['Hoster Ltd', '', 42])
    rejects(
      t,
      withStandalone({ name: 'replica-dr1', site: 'site-dr', organisation: bad }),
      ['standalone_hosts[replica-dr1].organisation'],
      `organisation ${JSON.stringify(bad)}`,
    )
  const raw = validRaw()
  const hosts = (raw.hosts as Record<string, unknown>[]).map((h, i) => (i === 0 ? { ...h, organisation: 'hoster' } : h))
  t.throws(() => parseTopology({ ...raw, hosts }), /organisation/, 'not a cluster host’s: a cluster is one organisation’s')
})

t.test('a standalone host’s name is unique across every list, and its site declared', async (t) => {
  const duplicate = 'is used by more than one process; every host, standalone host, array and witness needs its own name'
  rejects(t, withStandalone({ name: 'host-a1', site: 'site-dr' }), [`the name host-a1 ${duplicate}`], 'named like a cluster host')
  rejects(t, withStandalone({ name: 'array-b', site: 'site-dr' }), [`the name array-b ${duplicate}`], 'named like an array')
  rejects(t, withStandalone({ name: 'witness', site: 'site-dr' }), [`the name witness ${duplicate}`], 'named like the witness')
  rejects(
    t,
    withStandalone({ name: 'replica-dr1', site: 'site-dr' }, { name: 'replica-dr1', site: 'site-a' }),
    [`the name replica-dr1 ${duplicate}`],
    'two standalone hosts of one name',
  )
  rejects(
    t,
    withStandalone({ name: 'replica-dr1', site: 'site-x' }),
    ['standalone host replica-dr1 is in unknown site site-x; declare it under "sites" (known: site-a, site-b, site-c, site-dr)'],
    'a standalone host in an unknown site',
  )
  t.doesNotThrow(
    () => parseTopology(withStandalone({ name: 'replica-c1', site: 'site-c' })),
    'beside the witness is fine: the witness rule is about cluster hosts',
  )
})

t.test('a standalone host talks to the cluster’s hosts and other standalone hosts, not to arrays or the witness', async (t) => {
  const topo = parseTopology(withStandalone({ name: 'replica-dr1', site: 'site-dr' }, { name: 'replica-dr2', site: 'site-dr' }))
  const names = (name: string) => peersOf(topo, name).map((p) => p.name)
  t.same(names('replica-dr1'), ['host-a1', 'host-b1', 'replica-dr2'], 'the cluster hosts, then the other standalone host')
  t.same(names('host-a1'), ['host-b1', 'witness', 'array-a', 'array-b', 'replica-dr1', 'replica-dr2'], 'a cluster host talks to them')
  t.notOk(
    names('array-a').some((n) => n.startsWith('replica-')),
    'an array does not',
  )
  t.notOk(
    names('witness').some((n) => n.startsWith('replica-')),
    'the witness does not',
  )
  t.same(
    topo.hosts.map((h) => h.name),
    ['host-a1', 'host-b1'],
    'hosts stays the cluster members',
  )
  for (const p of processesOf(topo)) {
    t.notOk(names(p.name).includes(p.name), `${p.name} is not its own peer`)
    for (const q of peersOf(topo, p.name)) {
      t.ok(names(q.name).includes(p.name), `${p.name} -> ${q.name} is mutual`)
      t.not(dials(p.name, q.name), dials(q.name, p.name), `one of ${p.name} / ${q.name} dials`)
    }
  }
})
