/* Modamoda service worker.
 *
 * - App shell: precached at install; served network-first (a deploy is visible at the next load) with the cache as
 *   the offline fallback. Bump VERSION when the file list changes; old caches are deleted on activation.
 * - /config.json: network-first, cached for offline start.
 * - API GETs (jobs, job, me, credits, ledger, packs, account, catalogs) sent with a bearer token: network-first; the
 *   cached copy is served when the network fails, marked `X-Modamoda-Offline: 1` so the page shows its offline
 *   banner. POST/PATCH/PUT/DELETE and download links are never cached.
 * - Result images: `offline/results/<job_id>?src=<pre-signed URL>` is answered from the cache keyed
 *   `/offline/results/<job_id>` (pre-signed URLs change, the job id does not) or fetched from `src` and kept.
 *   Thumbnails for lists (`thumbnail_url`, small WebPs) the same way under `offline/thumbs/<job_id>`.
 * - The page posts {type: 'clear'} on sign-out (and sign-in): API responses and images of that user are deleted.
 */

const VERSION = 'v6';
const SHELL_CACHE = `modamoda-shell-${VERSION}`;
const DATA_CACHE = `modamoda-data-${VERSION}`;
const RESULTS_CACHE = `modamoda-results-${VERSION}`;
const THUMBS_CACHE = `modamoda-thumbs-${VERSION}`;
const CURRENT = new Set([SHELL_CACHE, DATA_CACHE, RESULTS_CACHE, THUMBS_CACHE]);
const MAX_ENTRIES = { [DATA_CACHE]: 300, [RESULTS_CACHE]: 400, [THUMBS_CACHE]: 1000 };
// Bumped by every 'clear': an answer that was in flight when the user signed out must not be stored afterwards.
let generation = 0;

const SHELL = [
  './',
  'index.html',
  'styles.css',
  'manifest.webmanifest',
  'icons/icon-192.png',
  'icons/icon-512.png',
  'icons/icon-maskable-512.png',
  'js/api.js',
  'js/auth.js',
  'js/capabilities.js',
  'js/config.js',
  'js/dropzone.js',
  'js/errors.js',
  'js/jobs.js',
  'js/main.js',
  'js/offline.js',
  'js/options.js',
  'js/results.js',
  'js/router.js',
  'js/stages.js',
  'js/ui.js',
  'js/uploads.js',
  'js/viewer.js',
  'js/pages/account.js',
  'js/pages/credits.js',
  'js/pages/dashboard.js',
  'js/pages/history.js',
  'js/pages/job.js',
  'js/pages/landing.js',
  'js/pages/process.js',
  'js/pages/signin.js',
  // the landing page's before/after examples (web/make_examples.py)
  'examples/tshirt_navy-before.webp',
  'examples/tshirt_navy-after.webp',
  'examples/hoodie_burgundy-before.webp',
  'examples/hoodie_burgundy-after.webp',
  'examples/dress_emerald-before.webp',
  'examples/dress_emerald-after.webp',
  // the background library's previews on the process page (web/make_previews.py)
  'img/backgrounds/studio-white.webp',
  'img/backgrounds/studio-grey.webp',
  'img/backgrounds/studio-charcoal.webp',
  'img/backgrounds/vignette-soft.webp',
  'img/backgrounds/sweep-warm.webp',
  'img/backgrounds/paper.webp',
  'img/backgrounds/linen.webp',
  'img/backgrounds/sage-gradient.webp',
  'img/backgrounds/concrete.webp',
];

const SCOPE = new URL(self.registration.scope);
const CONFIG_URL = new URL('config.json', SCOPE).href;
const RESULTS_PATH = new URL('offline/results/', SCOPE).pathname;
const THUMBS_PATH = new URL('offline/thumbs/', SCOPE).pathname;
const SHELL_URLS = new Set(SHELL.map((path) => new URL(path, SCOPE).href));
const API_PATH = /\/v1\/(?:jobs(?:\/[^/]+)?|me|capabilities|credits(?:\/ledger|\/packs)?|account(?:\/api-keys)?|catalog\/(?:poses|backgrounds))$/;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      await cache.addAll(SHELL.map((path) => new Request(new URL(path, SCOPE), { cache: 'reload' })));
      // The deployment's configuration, for an offline start; best effort (the page also keeps a copy).
      await cache.add(new Request(CONFIG_URL, { cache: 'reload' })).catch(() => {});
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith('modamoda-') && !CURRENT.has(n)).map((n) => caches.delete(n)));
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  const message = event.data || {};
  if (message.type === 'clear') {
    generation += 1;
    event.waitUntil(Promise.all([DATA_CACHE, RESULTS_CACHE, THUMBS_CACHE].map((name) => caches.delete(name))));
  } else if (message.type === 'forget-job' && message.jobId) {
    event.waitUntil(
      Promise.all([
        caches.open(RESULTS_CACHE).then((cache) => cache.delete(resultKey(message.jobId))),
        caches.open(THUMBS_CACHE).then((cache) => cache.delete(resultKey(message.jobId, THUMBS_PATH))),
      ]),
    );
  }
});

function resultKey(jobId, path = RESULTS_PATH) {
  return new URL(`${path}${encodeURIComponent(jobId)}`, SCOPE).href;
}

async function trim(cacheName) {
  const limit = MAX_ENTRIES[cacheName];
  const cache = await caches.open(cacheName);
  const keys = await cache.keys();
  await Promise.all(keys.slice(0, Math.max(0, keys.length - limit)).map((key) => cache.delete(key)));
}

async function put(cacheName, key, response, since = generation) {
  if (since !== generation) return; // the user's caches were cleared meanwhile
  const cache = await caches.open(cacheName);
  await cache.put(key, response);
  if (MAX_ENTRIES[cacheName]) await trim(cacheName);
}

/** Network first, keeping a copy; on failure the cached copy. */
async function shellOrConfig(request, key) {
  try {
    const response = await fetch(request);
    if (response.ok) await put(SHELL_CACHE, key, response.clone());
    return response;
  } catch (error) {
    const cached = (await caches.match(key, { cacheName: SHELL_CACHE, ignoreSearch: true }))
      || (request.mode === 'navigate' ? await caches.match(new URL('./', SCOPE).href, { cacheName: SHELL_CACHE }) : null);
    if (cached) return cached;
    throw error;
  }
}

async function apiGet(request) {
  const key = request.url;
  const since = generation;
  try {
    const response = await fetch(request);
    if (response.ok) await put(DATA_CACHE, key, response.clone(), since);
    return response;
  } catch (error) {
    const cached = await caches.match(key, { cacheName: DATA_CACHE, ignoreVary: true });
    if (!cached) throw error;
    const headers = new Headers();
    headers.set('Content-Type', cached.headers.get('Content-Type') || 'application/json');
    headers.set('X-Modamoda-Offline', '1');
    headers.set('Access-Control-Expose-Headers', 'X-Modamoda-Offline');
    return new Response(await cached.blob(), { status: cached.status, statusText: cached.statusText, headers });
  }
}

async function resultImage(url, path = RESULTS_PATH, cacheName = RESULTS_CACHE) {
  const key = resultKey(decodeURIComponent(url.pathname.slice(path.length)), path);
  const cached = await caches.match(key, { cacheName });
  if (cached) return cached;
  const src = url.searchParams.get('src');
  if (!src || !/^https?:$/.test(new URL(src).protocol)) return new Response('', { status: 404 });
  const since = generation;
  try {
    // CORS (the results bucket allows the app's origin): the status is readable, so only real images are kept.
    const response = await fetch(src, { mode: 'cors', credentials: 'omit' });
    if (response.ok) await put(cacheName, key, response.clone(), since);
    return response;
  } catch {
    // No CORS, or offline: show it if the browser can, keep nothing (an opaque error page must not be cached).
    return fetch(src, { mode: 'no-cors', credentials: 'omit' });
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);

  if (url.origin === SCOPE.origin) {
    if (url.pathname.startsWith(RESULTS_PATH)) {
      event.respondWith(resultImage(url));
      return;
    }
    if (url.pathname.startsWith(THUMBS_PATH)) {
      event.respondWith(resultImage(url, THUMBS_PATH, THUMBS_CACHE));
      return;
    }
    if (url.href === CONFIG_URL || url.href.startsWith(`${CONFIG_URL}?`)) {
      event.respondWith(shellOrConfig(request, CONFIG_URL));
      return;
    }
    // The app's own files (routes are hash routes, so every app navigation is to ./ or index.html). Other
    // same-origin pages (e.g. the local test checkout) are not the app's and pass through untouched.
    const bare = `${url.origin}${url.pathname}`;
    if (SHELL_URLS.has(bare)) {
      event.respondWith(shellOrConfig(request, bare));
      return;
    }
  }

  if (API_PATH.test(url.pathname) && request.headers.has('Authorization')) {
    event.respondWith(apiGet(request));
  }
});
