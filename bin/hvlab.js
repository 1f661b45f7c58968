#!/usr/bin/env node
// The `hvlab` command: registers the TypeScript loader (tsx) and runs the CLI.
import { register } from 'tsx/esm/api'

register()
await import('../scripts/cli/main.ts')
