/**
 * How the removal commands name what they removed or kept (shared/protocol/removal-messages.ts)
 * and the commands that remove a kept object later.
 */
import type { RemovableObject } from '../../shared/protocol/removal-messages.js'

/** One object in words: "remote copy group rc-web1 on array-a". */
export function describeObject(o: RemovableObject): string {
  switch (o.kind) {
    case 'vm-role':
      return `vm role ${o.name} (cluster database)`
    case 'rc-group':
      return `remote copy group ${o.name} on ${o.on}`
    case 'rc-volume':
      return `volume ${o.name} dismissed from group ${o.group} on ${o.on}`
    case 'lun':
      return `presentation of volume ${o.name} on ${o.on} to ${o.host}`
    case 'volume':
      return `volume ${o.name} on ${o.on}`
    case 'csv-region':
      return `region ${o.name} of CSV ${o.on}`
  }
}

/** The commands that remove `kept` by hand, in the order they must run (each once). */
export function removalCommands(kept: readonly RemovableObject[]): string[] {
  const commands: string[] = []
  const add = (c: string): void => void (commands.includes(c) ? undefined : commands.push(c))
  for (const o of kept) {
    if (o.kind === 'rc-group' || o.kind === 'rc-volume') {
      const group = o.kind === 'rc-group' ? o.name : o.group!
      add(`hvlab rcopy stop ${group}`)
      add(`hvlab rcopy remove ${group}`)
    }
  }
  for (const o of kept) {
    if (o.kind === 'lun' || o.kind === 'volume') add(`hvlab array volume remove ${o.on} ${o.name} --unpresent`)
    if (o.kind === 'csv-region') add(`hvlab csv release ${o.on} --region ${o.name}`)
  }
  return commands
}

/** A list of objects, one per line, indented. */
export function objectLines(objects: readonly RemovableObject[]): string[] {
  return objects.map((o) => `  ${describeObject(o)}`)
}
