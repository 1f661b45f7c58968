#!/usr/bin/env node
// The `hvlab` command: runs the CLI's bundle (dist/cli.js), rebuilt first if a source is newer.
import { ensureBuilt } from '../scripts/build/build.mjs'

ensureBuilt()
await import('../dist/cli.js')
