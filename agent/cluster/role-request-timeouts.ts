/**
 * How long a host waits for another host to answer a role request (a start, stop,
 * migrate or inventory from the coordinator, an operator request forwarded to the
 * coordinator) and how long an operator request waits for a coordinator with quorum.
 */
import { CLX_STATUS_TIMEOUT_MS_DEFAULT, CLX_VERB_TIMEOUT_MS_DEFAULT, CLX_WRITABLE_WAIT_MS_DEFAULT } from '../clx/clx-service.js'

export const ROLE_REQUEST_TIMEOUT_MS = 3000
/** A start may first have CLX make the VM's disk writable here (status, verb, wait for writable). */
export const START_REQUEST_TIMEOUT_MS = CLX_STATUS_TIMEOUT_MS_DEFAULT * 2 + CLX_VERB_TIMEOUT_MS_DEFAULT * 2 + CLX_WRITABLE_WAIT_MS_DEFAULT
/** A create may first provision the VM's replicated disk on both arrays. */
export const CREATE_REQUEST_TIMEOUT_MS = 60_000
/** How long the coordinator waits for an owner to take (not finish) a migration request. */
export const MIGRATE_REQUEST_TIMEOUT_MS = 5000
/** How long an operator request waits for a coordinator with quorum (a view change takes ~1 s). */
export const OPERATOR_WAIT_MS = 8000
