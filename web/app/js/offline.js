// The service worker's side of the page: registration, offline result images, clearing a user's cached data.

const USER_CACHE_PREFIXES = ['modamoda-data-', 'modamoda-results-', 'modamoda-thumbs-'];

export function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('sw.js', { scope: './', updateViaCache: 'none' }).catch((error) => {
    console.warn('service worker not registered', error);
  });
}

/**
 * The src for a job's result image. Under the service worker it is `offline/results/<job_id>?src=<pre-signed URL>`:
 * the worker answers from its cache (keyed by job id, because pre-signed URLs change) or fetches `src` and keeps it.
 */
export function resultSrc(job) {
  if (!job?.result_url) return null;
  if (navigator.serviceWorker?.controller) {
    return `offline/results/${encodeURIComponent(job.id)}?src=${encodeURIComponent(job.result_url)}`;
  }
  return job.result_url;
}

/**
 * The src for a job's thumbnail in lists (history, dashboard, grids): a small WebP (`thumbnail_url`), under the
 * service worker `offline/thumbs/<job_id>?src=<pre-signed URL>` (cached by job id, like results). null when the job
 * has no thumbnail (not succeeded, or made before thumbnails): never the full-size result.
 */
export function thumbSrc(job) {
  if (!job?.thumbnail_url) return null;
  if (navigator.serviceWorker?.controller) {
    return `offline/thumbs/${encodeURIComponent(job.id)}?src=${encodeURIComponent(job.thumbnail_url)}`;
  }
  return job.thumbnail_url;
}

function tellWorker(message) {
  navigator.serviceWorker?.controller?.postMessage(message);
}

/** Drop a deleted job's cached result and thumbnail. */
export async function forgetJob(jobId) {
  tellWorker({ type: 'forget-job', jobId });
  if (!('caches' in window)) return;
  const cached = {
    'modamoda-results-': new URL(`offline/results/${encodeURIComponent(jobId)}`, document.baseURI).href,
    'modamoda-thumbs-': new URL(`offline/thumbs/${encodeURIComponent(jobId)}`, document.baseURI).href,
  };
  for (const name of await caches.keys()) {
    for (const [prefix, path] of Object.entries(cached)) {
      if (name.startsWith(prefix)) await (await caches.open(name)).delete(path);
    }
  }
}

/** Remove every cached API response and result image (sign-out, sign-in as someone else). */
export async function clearUserCaches() {
  tellWorker({ type: 'clear' });
  if (!('caches' in window)) return;
  const names = await caches.keys();
  await Promise.all(names.filter((n) => USER_CACHE_PREFIXES.some((p) => n.startsWith(p))).map((n) => caches.delete(n)));
}
