// The results of the process page: a counter for the batch ("3 of 10 done, 1 refused"), "Download all" (one ZIP
// from POST /v1/jobs/archive) and a grid of tiles, one per photo. A tile shows the local preview while the photo is
// on its way and the result (its small thumbnail when the API has one) once done, with Download, View (the
// before/after viewer) and a link to the job's page; a failed or refused photo shows what happened and Retry.
// Everything a tile says about where its photo is comes from stageOf() (js/stages.js).

import { api } from './api.js';
import { apiErrorText } from './errors.js';
import { batchSummary, stageOf } from './stages.js';
import { allUploads, clearFinished, isDone, retryUpload, subscribe } from './uploads.js';
import { busy, formatBytes, h, plural } from './ui.js';

function startDownload(url, filename) {
  if (!/^https?:$/i.test(new URL(url, location.href).protocol)) throw new Error('That download link cannot be used.');
  const link = h('a', { href: url, download: filename || '', hidden: true, rel: 'noopener' });
  document.body.append(link);
  link.click();
  link.remove();
}

async function downloadOne(upload) {
  const { url, filename } = await api(`/v1/jobs/${encodeURIComponent(upload.jobId)}/download`);
  startDownload(url, filename || upload.name);
}

async function view(upload, button) {
  const job = upload.job || {};
  const after = job.result_url || upload.result;
  const before = job.original_url || upload.preview || null;
  try {
    const { openViewer } = await import('./viewer.js');
    openViewer({ name: upload.name, before, after, onClose: () => button.focus() });
  } catch (error) {
    console.warn('viewer unavailable', error);
    const link = h('a', { href: after, target: '_blank', rel: 'noopener', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  }
}

function media(upload) {
  const src = upload.thumbnail || upload.result;
  if (upload.status === 'succeeded' && src) {
    const img = h('img', {
      class: 'tile-image',
      src,
      alt: `Result for ${upload.name}`,
      'data-result': upload.jobId,
      decoding: 'async',
    });
    if (upload.thumbnail && upload.result) {
      // a thumbnail that cannot be shown (expired link, offline): fall back to the result itself
      img.addEventListener('error', () => { img.src = upload.result; }, { once: true });
    }
    return img;
  }
  if (upload.preview) {
    const img = h('img', { class: 'tile-image tile-preview', src: upload.preview, alt: '', decoding: 'async' });
    img.addEventListener('error', () => img.replaceWith(h('span', { class: 'tile-image tile-placeholder', 'aria-hidden': 'true' })), { once: true });
    return img;
  }
  return h('span', { class: 'tile-image tile-placeholder', 'aria-hidden': 'true' });
}

/**
 * One tile. `canAfford(credits)`: null when the account can pay, else the sentence saying it cannot.
 */
function tile(upload, { canAfford }) {
  const frame = h('div', { class: 'tile-media' });
  const badge = h('span', { class: 'badge', 'data-stage-badge': '' });
  const progress = h('progress', { max: '100', 'aria-label': `Progress of ${upload.name}`, 'data-stage-progress': '' });
  const notice = h('p', { class: 'hint tile-notice', hidden: true });
  const error = h('p', { class: 'upload-error', hidden: true });
  const actions = h('div', { class: 'tile-actions' });
  const row = h('li', { class: 'tile', 'data-upload': upload.key },
    frame,
    h('div', { class: 'tile-body' },
      h('p', { class: 'tile-name' }, upload.name),
      h('p', { class: 'tile-state' }, badge, h('span', { class: 'hint' }, formatBytes(upload.size))),
      progress, notice, error, actions));

  let shown = ''; // what the media frame and actions show, to rebuild them only when that changes
  row.paint = (u) => {
    const stage = stageOf(u);
    row.dataset.stage = stage.id;
    row.dataset.stageLabel = stage.label;
    if (u.jobId) row.dataset.jobId = u.jobId;
    badge.dataset.status = u.status;
    badge.textContent = stage.label;
    progress.setAttribute('aria-valuetext', stage.label);
    progress.textContent = stage.label;
    if (stage.percent === null) progress.removeAttribute('value');
    else progress.value = stage.percent;
    progress.hidden = stage.final;
    notice.textContent = u.notice || '';
    notice.hidden = !u.notice;
    error.replaceChildren();
    if (u.error) {
      error.append(u.error);
      if (u.errorCode === 'insufficient_credits') error.append(' ', h('a', { href: '#/credits', 'data-buy-credits': '' }, 'Buy credits'));
    }
    error.hidden = !u.error;
    row.classList.toggle('tile-failed', stage.tone === 'problem');

    const key = `${u.status}|${u.jobId}|${u.thumbnail || u.result || u.preview || ''}`;
    if (key === shown) return;
    shown = key;
    frame.replaceChildren(media(u));
    actions.replaceChildren();
    if (u.status === 'succeeded' && u.jobId) {
      const download = h('a', {
        href: u.job?.result_url || '#/history',
        class: 'btn btn-secondary btn-small',
        'data-download': u.jobId,
        'aria-label': `Download the result for ${u.name}`,
      }, 'Download');
      download.addEventListener('click', async (event) => {
        event.preventDefault();
        try {
          await downloadOne(u);
        } catch (failure) {
          notice.textContent = apiErrorText(failure);
          notice.hidden = false;
        }
      });
      const viewButton = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-view': u.jobId, 'aria-label': `View ${u.name} larger, before and after` }, 'View');
      viewButton.addEventListener('click', () => view(u, viewButton));
      frame.querySelector('img')?.addEventListener('click', () => view(u, viewButton));
      actions.append(download, viewButton);
    }
    if (['failed', 'rejected', 'cancelled'].includes(u.status) && u.jobId) {
      const retry = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-retry': u.jobId, 'aria-label': `Retry ${u.name}` }, 'Retry');
      retry.addEventListener('click', () => busy(retry, async () => {
        const refusal = canAfford?.(u.cost || 0);
        if (refusal) {
          notice.replaceChildren(refusal, ' ', h('a', { href: '#/credits', 'data-buy-credits': '' }, 'Buy credits'));
          notice.hidden = false;
          return;
        }
        try {
          await retryUpload(u);
          row.querySelector('[data-stage-badge]')?.focus?.();
        } catch (failure) {
          notice.textContent = apiErrorText(failure);
          notice.hidden = false;
        }
      }));
      actions.append(retry);
    }
    if (u.jobId && u.status !== 'error') {
      actions.append(h('a', { href: `#/jobs/${encodeURIComponent(u.jobId)}`, class: 'btn btn-quiet btn-small', 'data-job-link': u.jobId, 'aria-label': `Details of ${u.name}` }, 'Details'));
    }
  };
  row.paint(upload);
  return row;
}

/** The results section. Returns {element, reveal()}. */
export function resultsSection({ signal, canAfford, onProgress }) {
  const counter = h('p', { class: 'batch-counter', id: 'batch-counter', 'aria-live': 'polite' });
  const status = h('div', { class: 'results-status', id: 'results-status', 'aria-live': 'polite' });
  const downloadAll = h('button', { type: 'button', id: 'download-all', class: 'btn btn-primary btn-small', hidden: true }, 'Download all');
  const clearButton = h('button', { type: 'button', id: 'uploads-clear', class: 'btn btn-quiet btn-small', hidden: true }, 'Clear finished');
  const list = h('ul', { id: 'upload-list', class: 'tiles', 'aria-label': 'Results' });
  const empty = h('p', { class: 'empty results-empty' }, 'Your results appear here, next to each photo, as soon as they are ready.');
  const heading = h('h2', { id: 'results-heading', tabindex: '-1' }, 'Results');
  const element = h('section', { class: 'results card', id: 'results', 'aria-labelledby': 'results-heading' },
    h('div', { class: 'section-head' }, heading, h('div', { class: 'results-actions' }, downloadAll, clearButton)),
    counter, status, empty, list,
    h('p', { class: 'hint' }, 'You can leave this page: processing goes on, and results also appear in ', h('a', { href: '#/history' }, 'History'), '.'));

  const succeeded = () => allUploads().filter((u) => u.status === 'succeeded' && u.jobId);

  const refreshHead = () => {
    const uploads = allUploads();
    const summary = batchSummary(uploads);
    counter.textContent = summary ? summary.text : '';
    counter.hidden = !summary;
    empty.hidden = uploads.length > 0;
    const ready = succeeded().length;
    downloadAll.hidden = ready === 0;
    downloadAll.textContent = ready > 1 ? `Download all ${ready} (ZIP)` : 'Download as ZIP';
    clearButton.hidden = !uploads.some(isDone);
  };

  const renderList = () => {
    const rows = new Map(Array.from(list.children, (row) => [row.dataset.upload, row]));
    const wanted = allUploads();
    for (const [key, row] of rows) if (!wanted.some((u) => u.key === key)) row.remove();
    wanted.forEach((upload, index) => {
      const row = rows.get(upload.key) || tile(upload, { canAfford });
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    refreshHead();
  };

  downloadAll.addEventListener('click', () => busy(downloadAll, async () => {
    const ids = succeeded().map((u) => u.jobId);
    if (!ids.length) return;
    status.replaceChildren(h('p', { class: 'hint' }, `Preparing a ZIP of ${plural(ids.length, 'image')}…`));
    try {
      const archive = await api('/v1/jobs/archive', { method: 'POST', body: { job_ids: ids } });
      startDownload(archive.url, archive.filename);
      const size = Number.isFinite(archive.bytes) ? ` (${formatBytes(archive.bytes)})` : '';
      status.replaceChildren(h('p', { class: 'hint', 'data-archive-ready': '' },
        `Your ZIP of ${plural(archive.count ?? ids.length, 'image')}${size} is downloading. If it does not start, `,
        h('a', { href: archive.url, download: archive.filename || '' }, 'download it here'), '.'));
    } catch (error) {
      status.replaceChildren(h('p', { class: 'form-error' }, apiErrorText(error)));
    }
  }));
  clearButton.addEventListener('click', () => {
    status.replaceChildren();
    clearFinished();
  });

  const unsubscribe = subscribe((changed) => {
    if (changed === null) renderList();
    else {
      const row = list.querySelector(`[data-upload="${CSS.escape(changed.key)}"]`);
      if (row) row.paint(changed);
      else renderList();
      refreshHead();
    }
    onProgress?.(changed);
  });
  signal.addEventListener('abort', unsubscribe);
  renderList();

  return {
    element,
    reveal() {
      const box = element.getBoundingClientRect();
      if (box.top < 0 || box.top > window.innerHeight * 0.25) {
        const reduce = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
        element.scrollIntoView({ behavior: reduce ? 'auto' : 'smooth', block: 'start' });
      }
      heading.focus({ preventScroll: true });
    },
  };
}
