/** The default lab's arrays and hosts by site, for unit tests of site-aware storage logic (CLX). */
export const ARRAYS = [
  { name: 'array-a', site: 'site-a' },
  { name: 'array-b', site: 'site-b' },
]
export const HOSTS = [
  { name: 'host-a1', site: 'site-a' },
  { name: 'host-a2', site: 'site-a' },
  { name: 'host-b1', site: 'site-b' },
  { name: 'host-b2', site: 'site-b' },
]
