/**
 * The request target of an HTTP request (`GET /v1/status?x=1 HTTP/1.1`), read without
 * ever throwing: Node's parser passes targets such as `http://x:99999/`, `http://[/`,
 * `//x:99999/` or `http://%zz/` through as they are, and `new URL` throws on them. Every
 * listener reads its target here and answers 400 when it is refused. Only the origin
 * form (a path starting with one `/`) is served; our clients send nothing else.
 */

export type RequestTarget = { ok: true; path: string; query: URLSearchParams } | { ok: false; reason: string }

export function parseRequestTarget(raw: string | undefined): RequestTarget {
  const target = raw ?? ''
  if (!target.startsWith('/') || target.startsWith('//')) {
    return {
      ok: false,
      reason: `request target ${JSON.stringify(target.slice(0, 64))} is not a path; send an origin-form target such as /v1/status`,
    }
  }
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  // URLSearchParams decodes leniently (a bad %-escape stays as written); it never throws.
  const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1))
  return { ok: true, path, query }
}

/** A %-encoded path segment decoded, or undefined when its escapes are malformed (`%E0%A4%A`, `%zz`). */
export function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}
