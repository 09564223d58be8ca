// Uploads in progress, kept outside the page so they keep going (and can be shown again) while the user browses.
// For each photo: POST /v1/jobs → multipart POST to the pre-signed URL (XHR, for upload progress) → poll the job.

import { api } from './api.js';
import { resultSrc } from './offline.js';
import { FINAL_STATUSES, STATUS_LABELS, formatBytes } from './ui.js';

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
const CONCURRENT_UPLOADS = 3;
const POLL_MS = 1000;
const POLL_MAX_MS = 5000;
const POLL_GIVE_UP_MS = 30 * 60 * 1000;

const uploads = [];
const listeners = new Set();
let counter = 0;

export function allUploads() {
  return uploads;
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function update(upload, patch) {
  Object.assign(upload, patch);
  for (const listener of listeners) listener(upload);
}

export function isDone(upload) {
  return upload.status === 'error' || FINAL_STATUSES.has(upload.status);
}

/** Forget finished and failed rows (new batch, or the "Clear finished" button). */
export function clearFinished() {
  for (let i = uploads.length - 1; i >= 0; i -= 1) if (isDone(uploads[i])) uploads.splice(i, 1);
  for (const listener of listeners) listener(null);
}

/** Stop everything and forget it (sign-out). */
export function cancelUploads() {
  for (const upload of uploads) {
    upload.cancelled = true;
    upload.xhr?.abort();
  }
  uploads.length = 0;
  for (const listener of listeners) listener(null);
}

export function contentTypeOf(file) {
  if (ACCEPTED_TYPES.has(file.type)) return file.type;
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  return ACCEPTED[ext] || null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function s3Error(xhr) {
  const text = xhr.responseText || '';
  const code = (text.match(/<Code>([^<]*)<\/Code>/) || [])[1];
  const message = (text.match(/<Message>([^<]*)<\/Message>/) || [])[1];
  if (code === 'EntityTooLarge') return 'The photo is larger than the upload limit.';
  if (code === 'AccessDenied' && /expired/i.test(message || '')) return 'The upload link expired. Process the photo again.';
  return `The upload failed${message ? `: ${message}` : ` (${xhr.status || 'no answer'})`}.`;
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
    xhr.onerror = () => reject(new Error('The upload could not reach the storage service. Check your connection and try again.'));
    xhr.onabort = () => reject(new Error('The upload was cancelled.'));
    xhr.ontimeout = () => reject(new Error('The upload timed out. Try again.'));
    xhr.send(form);
  }).finally(() => {
    upload.xhr = null;
  });
}

function fail(upload, message) {
  update(upload, { status: 'error', error: message, label: '', percent: upload.percent });
}

function applyJob(upload, job) {
  const progress = job.progress || {};
  const patch = { status: job.status, job };
  if (job.status === 'succeeded') {
    Object.assign(patch, { percent: 100, label: '', result: resultSrc(job), error: null });
  } else if (FINAL_STATUSES.has(job.status)) {
    Object.assign(patch, {
      label: '',
      error: job.error?.message || 'The photo could not be processed. No credits were charged.',
    });
  } else {
    const percent = Number.isFinite(progress.percent) ? Math.max(0, Math.min(100, progress.percent)) : null;
    Object.assign(patch, { percent, label: progress.label || STATUS_LABELS[job.status] || job.status });
  }
  update(upload, patch);
}

async function poll(upload) {
  let delay = POLL_MS;
  let last = '';
  const started = Date.now();
  while (!upload.cancelled) {
    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(upload.jobId)}`);
    } catch (error) {
      if (upload.cancelled) return;
      if (error.status === 401) return fail(upload, 'Signed out before the result was ready; it will be in History.');
      if (error.status === 404) return fail(upload, 'This job no longer exists.');
      delay = Math.min(delay * 2, 15000);
      update(upload, { label: `${error.message} Retrying…` });
      await sleep(delay);
      continue;
    }
    if (upload.cancelled) return;
    applyJob(upload, job);
    if (FINAL_STATUSES.has(job.status)) return;
    const now = `${job.status}|${upload.percent}|${upload.label}`;
    delay = now === last ? Math.min(Math.round(delay * 1.25), POLL_MAX_MS) : POLL_MS;
    last = now;
    if (Date.now() - started > POLL_GIVE_UP_MS) {
      update(upload, { label: 'Still working on it. The result will appear in History when it is ready.' });
      return;
    }
    await sleep(delay);
  }
}

async function processOne(upload, request) {
  const type = contentTypeOf(upload.file);
  if (!type) return fail(upload, 'This file type is not supported. Use JPEG, PNG, WebP, TIFF, AVIF or HEIC photos.');
  update(upload, { status: 'preparing', label: 'Preparing…' });
  let created;
  try {
    created = await api('/v1/jobs', { method: 'POST', body: { ...request, filename: upload.file.name, content_type: type } });
  } catch (error) {
    const hint = error.code === 'insufficient_credits' ? ' Buy more on the Credits page.' : '';
    return fail(upload, `${error.message}${hint}`);
  }
  if (upload.cancelled) return;
  upload.jobId = created.job_id;
  update(upload, { job: created.job || null });
  if (created.max_bytes && upload.file.size > created.max_bytes) {
    api(`/v1/jobs/${encodeURIComponent(created.job_id)}`, { method: 'DELETE' }).catch(() => {});
    return fail(upload, `This photo is ${formatBytes(upload.file.size)}; the limit is ${formatBytes(created.max_bytes)}.`);
  }
  update(upload, { status: 'uploading', percent: 0, label: 'Uploading… 0%' });
  try {
    await postToStorage(upload, created.upload, upload.file, (loaded, total) => {
      const percent = Math.round((loaded / total) * 100);
      update(upload, { percent, label: `Uploading… ${percent}%` });
    });
  } catch (error) {
    if (upload.cancelled) return;
    // the job never got its photo: remove it rather than leave it waiting in History (best effort)
    api(`/v1/jobs/${encodeURIComponent(created.job_id)}`, { method: 'DELETE' }).catch(() => {});
    return fail(upload, error.message);
  }
  upload.file = null; // uploaded: let the browser free it
  update(upload, { status: created.job?.status || 'awaiting_upload', percent: null, label: 'Uploaded. Starting…' });
  await poll(upload);
}

/**
 * Start one job per file. `request` = {mode, options, priority}. Resolves when every photo is uploaded (or failed),
 * not when processing ends: polling goes on in the background.
 */
export async function startBatch(files, request) {
  clearFinished();
  const batch = Array.from(files, (file) => ({
    key: `u${Date.now().toString(36)}-${(counter += 1)}`,
    file,
    name: file.name,
    size: file.size,
    status: 'preparing',
    percent: 0,
    label: 'Waiting…',
    error: null,
    result: null,
    job: null,
    jobId: null,
  }));
  uploads.unshift(...batch);
  for (const listener of listeners) listener(null);

  const queue = [...batch];
  const workers = Array.from({ length: Math.min(CONCURRENT_UPLOADS, queue.length) }, async () => {
    while (queue.length) {
      const upload = queue.shift();
      const done = processOne(upload, request).catch((error) => fail(upload, error.message || 'Something went wrong.'));
      // a worker moves on once its photo is uploaded; polling continues on its own
      await Promise.race([done, waitUntilUploaded(upload)]);
    }
  });
  await Promise.all(workers);
  return batch;
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
