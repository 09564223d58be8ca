// Hash routes: #/signin, #/ (dashboard), #/process, #/history, #/jobs/<id>, #/credits, #/account; `?key=value`
// after the path.

export const NEXT_KEY = 'modamoda.next';

export function parseHash(hash = location.hash) {
  const raw = hash && hash.startsWith('#/') ? hash.slice(1) : '/';
  const [path, query = ''] = raw.split('?');
  return { path: path || '/', params: new URLSearchParams(query) };
}

/** Go to a route; re-renders when it is already the current one. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** Change the address bar without rendering again (e.g. drop `?checkout=success` once handled). */
export function replaceQuiet(hash) {
  history.replaceState(history.state, '', hash);
}

/** The route to return to after signing in (set when a signed-out visitor lands on a protected page). */
export function takeNext() {
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return next && next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/';
}
