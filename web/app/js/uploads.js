// The photos of the process page, kept outside the page so they survive browsing away and back:
// - the selection: photos chosen (picker, drop, paste) but not sent yet, each with a local preview;
// - the uploads: one per photo sent: POST /v1/jobs → multipart POST to the pre-signed URL (XHR, for upload
//   progress) → poll the job until it ends. A failed or refused job can be retried (POST /v1/jobs/{id}/retry).
// Signing out (cancelUploads) stops and forgets both.

import { api } from './api.js';
import { apiErrorText, jobErrorText } from './errors.js';
import { resultSrc } from './offline.js';
import { FINAL_STATUSES, formatBytes } from './ui.js';

const ACCEPTED = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  avif: 'image/avif',
  heic: 'image/heic',
  heif: 'image/heif',
};
const ACCEPTED_TYPES = new Set(Object.values(ACCEPTED));
export const ACCEPT_ATTRIBUTE = [...ACCEPTED_TYPES, ...Object.keys(ACCEPTED).map((ext) => `.${ext}`)].join(',');
export const MAX_SELECTION = 200; // the most photos one batch may hold (one ZIP holds as many)
const CONCURRENT_UPLOADS = 3;
const POLL_MS = 1000;
const POLL_MAX_MS = 5000;
const POLL_GIVE_UP_MS = 30 * 60 * 1000;

const uploads = [];
const listeners = new Set();
const selected = [];
const selectionListeners = new Set();
let counter = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nextKey = (prefix) => `${prefix}${Date.now().toString(36)}-${(counter += 1)}`;

// ---- the selection ------------------------------------------------------------------------------------------

export function contentTypeOf(file) {
  if (ACCEPTED_TYPES.has(file.type)) return file.type;
  const ext = (String(file.name || '').split('.').pop() || '').toLowerCase();
  return ACCEPTED[ext] || null;
}

export function selection() {
  return selected;
}

export function subscribeSelection(listener) {
  selectionListeners.add(listener);
  return () => selectionListeners.delete(listener);
}

function selectionChanged() {
  for (const listener of selectionListeners) listener(selected);
}

function preview(file) {
  try {
    return URL.createObjectURL(file);
  } catch {
    return null;
  }
}

function revoke(url) {
  if (url && url.startsWith('blob:')) URL.revokeObjectURL(url);
}

/**
 * Add files to the selection. Returns {added, skipped: [sentence, ...]}: files that are not a photo type we
 * accept, and files already chosen, are left out with a sentence saying why.
 */
export function addToSelection(files) {
  const skipped = [];
  let added = 0;
  for (const file of Array.from(files || [])) {
    if (!file) continue;
    if (!contentTypeOf(file)) {
      skipped.push(`“${file.name || 'That file'}” is not a photo type we accept (use JPEG, PNG, WebP, AVIF, HEIC or TIFF), so it was not added.`);
      continue;
    }
    if (selected.some((s) => s.name === file.name && s.size === file.size)) {
      skipped.push(`“${file.name}” is already in the list.`);
      continue;
    }
    if (selected.length >= MAX_SELECTION) {
      skipped.push(`One batch holds at most ${MAX_SELECTION} photos; process these first, then add the rest.`);
      break;
    }
    selected.push({ id: nextKey('s'), file, name: file.name, size: file.size, preview: preview(file) });
    added += 1;
  }
  if (added) selectionChanged();
  return { added, skipped };
}

export function removeFromSelection(id) {
  const index = selected.findIndex((s) => s.id === id);
  if (index < 0) return;
  revoke(selected[index].preview);
  selected.splice(index, 1);
  selectionChanged();
}

/** Take the first `count` photos out of the selection (to send them); their previews move with them. */
export function takeFromSelection(count = selected.length) {
  const taken = selected.splice(0, Math.max(0, count));
  selectionChanged();
  return taken;
}

export function clearSelection() {
  for (const item of selected) revoke(item.preview);
  selected.length = 0;
  selectionChanged();
}

// ---- the uploads --------------------------------------------------------------------------------------------

export function allUploads() {
  return uploads;
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function announce(changed) {
  for (const listener of listeners) listener(changed);
}

function update(upload, patch) {
  Object.assign(upload, patch);
  announce(upload);
}

export function isDone(upload) {
  return upload.status === 'error' || FINAL_STATUSES.has(upload.status);
}

/** Forget finished and failed rows (the "Clear finished" button). */
export function clearFinished() {
  for (let i = uploads.length - 1; i >= 0; i -= 1) {
    if (isDone(uploads[i])) revoke(uploads.splice(i, 1)[0].preview);
  }
  announce(null);
}

/** Stop everything and forget it, the selection too (sign-out). */
export function cancelUploads() {
  for (const upload of uploads) {
    upload.cancelled = true;
    upload.xhr?.abort();
    revoke(upload.preview);
  }
  uploads.length = 0;
  clearSelection();
  announce(null);
}

/** Credits this page's photos still need that the account has not set aside yet (not reserved before validation). */
export function creditsNotYetReserved() {
  const unreserved = new Set(['preparing', 'uploading', 'awaiting_upload', 'queued', 'validated']);
  return uploads.reduce((sum, u) => sum + (unreserved.has(u.status) && !u.cancelled ? u.cost || 0 : 0), 0);
}

function s3Error(xhr) {
  const text = xhr.responseText || '';
  const code = (text.match(/<Code>([^<]*)<\/Code>/) || [])[1];
  const message = (text.match(/<Message>([^<]*)<\/Message>/) || [])[1];
  if (code === 'EntityTooLarge') return 'This photo is larger than the upload limit. Save it at a smaller size and try again.';
  if (code === 'AccessDenied' && /expired/i.test(message || '')) return 'The upload link expired before the photo was sent. Process the photo again.';
  return 'The photo could not be uploaded. Check your connection and process it again.';
}

/** Multipart POST to a pre-signed URL: every field first, the file last as `file`. */
function postToStorage(upload, target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(target.fields || {})) form.append(key, value);
    form.append('file', file);
    const xhr = new XMLHttpRequest();
    upload.xhr = xhr;
    xhr.open('POST', target.url);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(s3Error(xhr))));
    xhr.onerror = () => reject(new Error('The photo could not be uploaded: the connection failed. Check it and process the photo again.'));
    xhr.onabort = () => reject(new Error('The upload was cancelled.'));
    xhr.ontimeout = () => reject(new Error('The upload took too long. Check your connection and process the photo again.'));
    xhr.send(form);
  }).finally(() => {
    upload.xhr = null;
  });
}

function fail(upload, message, code = null) {
  update(upload, { status: 'error', error: message, errorCode: code, notice: null });
}

function applyJob(upload, job) {
  const patch = { status: job.status, job, jobId: job.id || upload.jobId, notice: null };
  if (job.status === 'succeeded') {
    Object.assign(patch, {
      percent: 100,
      result: resultSrc(job),
      thumbnail: job.thumbnail_url || null,
      error: null,
      errorCode: null,
    });
  } else if (FINAL_STATUSES.has(job.status)) {
    const error = job.error || (job.status === 'cancelled' ? { code: 'cancelled' } : null);
    Object.assign(patch, { error: jobErrorText(error) || jobErrorText({ code: 'unknown' }), errorCode: error?.code || null });
  } else {
    patch.percent = null;
  }
  update(upload, patch);
}

async function poll(upload) {
  let delay = POLL_MS;
  let last = '';
  const started = Date.now();
  const jobId = upload.jobId;
  while (!upload.cancelled && upload.jobId === jobId) {
    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (upload.cancelled || upload.jobId !== jobId) return;
      if (error.status === 401) return fail(upload, 'You were signed out before the result was ready. Sign in again: the result will be in History.');
      if (error.status === 404) return fail(upload, 'This photo’s job no longer exists; it may have been deleted. Process the photo again if you still need it.');
      delay = Math.min(delay * 2, 15000);
      update(upload, { notice: `${apiErrorText(error)} We keep trying.` });
      await sleep(delay);
      continue;
    }
    if (upload.cancelled || upload.jobId !== jobId) return;
    applyJob(upload, job);
    if (FINAL_STATUSES.has(job.status)) return;
    const now = job.status;
    delay = now === last ? Math.min(Math.round(delay * 1.25), POLL_MAX_MS) : POLL_MS;
    last = now;
    if (Date.now() - started > POLL_GIVE_UP_MS) {
      update(upload, { notice: 'This is taking longer than usual. The result will appear in History when it is ready.' });
      return;
    }
    await sleep(delay);
  }
}

async function processOne(upload, request) {
  const type = contentTypeOf(upload.file);
  if (!type) return fail(upload, 'This file type is not supported. Use JPEG, PNG, WebP, TIFF, AVIF or HEIC photos.');
  let created;
  try {
    created = await api('/v1/jobs', { method: 'POST', body: { ...request, filename: upload.file.name, content_type: type } });
  } catch (error) {
    return fail(upload, apiErrorText(error), error.code || null);
  }
  if (upload.cancelled) return;
  upload.jobId = created.job_id;
  update(upload, { job: created.job || null });
  if (created.max_bytes && upload.file.size > created.max_bytes) {
    api(`/v1/jobs/${encodeURIComponent(created.job_id)}`, { method: 'DELETE' }).catch(() => {});
    return fail(upload, `This photo is ${formatBytes(upload.file.size)}; the limit is ${formatBytes(created.max_bytes)}. Save it at a smaller size and process it again.`);
  }
  update(upload, { status: 'uploading', percent: 0 });
  try {
    await postToStorage(upload, created.upload, upload.file, (loaded, total) => {
      const percent = Math.round((loaded / total) * 100);
      if (percent !== upload.percent) update(upload, { percent });
    });
  } catch (error) {
    if (upload.cancelled) return;
    // the job never got its photo: remove it rather than leave it waiting in History (best effort)
    api(`/v1/jobs/${encodeURIComponent(created.job_id)}`, { method: 'DELETE' }).catch(() => {});
    return fail(upload, error.message);
  }
  upload.file = null; // uploaded: let the browser free it (the preview keeps its own reference)
  update(upload, { status: 'awaiting_upload', percent: null });
  await poll(upload);
}

/**
 * Start one job per photo. `items`: selection entries ({file, name, size, preview}) or plain Files;
 * `request` = {mode, options, priority}; `cost`: credits one photo costs. The previous batch's finished rows are
 * cleared first (they are in History). Resolves when every photo is uploaded (or
 * failed), not when processing ends: polling goes on in the background.
 */
export async function startBatch(items, request, cost = 0) {
  clearFinished(); // a new batch: the last one's results stay in History
  const batch = Array.from(items, (item) => {
    const file = item instanceof File ? item : item.file;
    return {
      key: nextKey('u'),
      file,
      name: file.name,
      size: file.size,
      preview: item instanceof File ? preview(file) : item.preview,
      mode: request.mode,
      cost,
      status: 'preparing',
      percent: null,
      notice: null,
      error: null,
      errorCode: null,
      result: null,
      thumbnail: null,
      job: null,
      jobId: null,
    };
  });
  uploads.unshift(...batch);
  announce(null);

  const queue = [...batch];
  const workers = Array.from({ length: Math.min(CONCURRENT_UPLOADS, queue.length) }, async () => {
    while (queue.length) {
      const upload = queue.shift();
      const done = processOne(upload, request).catch((error) => fail(upload, apiErrorText(error)));
      // a worker moves on once its photo is uploaded; polling continues on its own
      await Promise.race([done, waitUntilUploaded(upload)]);
    }
  });
  await Promise.all(workers);
  return batch;
}

/** Retry a failed or refused photo on its stored original (no new upload): the row follows the new job. */
export async function retryUpload(upload) {
  const created = await api(`/v1/jobs/${encodeURIComponent(upload.jobId)}/retry`, { method: 'POST' });
  const job = created.job || created;
  const jobId = created.job_id || job.id;
  update(upload, {
    jobId,
    retryOf: upload.jobId,
    job,
    status: job.status || 'queued',
    percent: null,
    error: null,
    errorCode: null,
    notice: null,
    result: null,
    thumbnail: null,
    cost: Number.isFinite(job.cost) ? job.cost : upload.cost,
  });
  if (FINAL_STATUSES.has(job.status)) applyJob(upload, job);
  else poll(upload);
  return upload;
}

function waitUntilUploaded(upload) {
  return new Promise((resolve) => {
    const check = () => {
      if (upload.cancelled || (upload.status !== 'preparing' && upload.status !== 'uploading')) {
        unsubscribe();
        resolve();
      }
    };
    const unsubscribe = subscribe((changed) => {
      if (changed === upload || changed === null) check();
    });
    check();
  });
}
