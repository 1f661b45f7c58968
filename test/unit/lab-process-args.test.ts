import t from 'tap'
import { parseLabProcessArgs } from '../../shared/lab-process.js'

const good = ['--name', 'host-a1', '--dir', '/tmp/lab', '--topology', '/tmp/lab/topology.json', '--controller-port', '4100']

// commander writes its own error line to stderr before throwing; keep the test output clean.
const quiet = <T>(fn: () => T): T => {
  const write = process.stderr.write
  process.stderr.write = (() => true) as typeof process.stderr.write
  try {
    return fn()
  } finally {
    process.stderr.write = write
  }
}

t.test('parses the arguments the controller passes', async (t) => {
  t.same(parseLabProcessArgs(good, 'host'), {
    name: 'host-a1',
    role: 'host',
    dir: '/tmp/lab',
    topologyFile: '/tmp/lab/topology.json',
    controllerPort: 4100,
  })
  t.same(parseLabProcessArgs(['--controller-port=1', '--topology=t.json', '--dir=d', '--name=witness'], 'witness'), {
    name: 'witness',
    role: 'witness',
    dir: 'd',
    topologyFile: 't.json',
    controllerPort: 1,
  })
})

t.test('refuses a bad or missing argument', async (t) => {
  for (const port of ['0', '65536', 'abc', '4100.5', '-1']) {
    const argv = [...good.slice(0, -1), port]
    t.throws(
      () => quiet(() => parseLabProcessArgs(argv, 'host')),
      { code: 'commander.invalidArgument', message: /a TCP port, 1-65535/ },
      `port ${port}`,
    )
  }
  for (const option of ['--name', '--dir', '--topology', '--controller-port']) {
    const i = good.indexOf(option)
    const argv = [...good.slice(0, i), ...good.slice(i + 2)]
    t.throws(
      () => quiet(() => parseLabProcessArgs(argv, 'array')),
      { code: 'commander.missingMandatoryOptionValue', message: new RegExp(option) },
      `without ${option}`,
    )
  }
  t.throws(
    () => quiet(() => parseLabProcessArgs([...good, '--colour', 'red'], 'host')),
    { code: 'commander.unknownOption' },
    'an unknown option',
  )
  t.throws(() => quiet(() => parseLabProcessArgs([...good, 'extra'], 'host')), { code: 'commander.excessArguments' }, 'an extra argument')
})
