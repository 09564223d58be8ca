// One job as a list item: thumbnail, file name, status, details; optional download and delete actions.

import { api } from './api.js';
import { forgetJob, resultSrc } from './offline.js';
import { MODE_LABELS, formatDate, h, plural, statusBadge, toast } from './ui.js';

export function thumbnail(job, size = 72) {
  const src = job.status === 'succeeded' ? resultSrc(job) : null;
  if (!src) return h('div', { class: 'thumb thumb-empty', 'aria-hidden': 'true' });
  return h('img', {
    class: 'thumb',
    src,
    alt: `Result for ${job.filename}`,
    width: size,
    height: size,
    decoding: 'async',
    'data-result': job.id,
  });
}

/** Ask for a short-lived download link and hand it to the browser (attachment, no page change). */
export async function download(job) {
  const { url, filename } = await api(`/v1/jobs/${encodeURIComponent(job.id)}/download`);
  if (!/^https?:/i.test(new URL(url, location.href).protocol)) throw new Error('Unexpected download link.');
  const link = h('a', { href: url, download: filename || job.filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/**
 * <li data-job-id>. `actions`: show download/delete buttons; `onDeleted(job)` after a confirmed delete.
 */
export function jobItem(job, { actions = false, onDeleted } = {}) {
  const details = [
    MODE_LABELS[job.mode] || job.mode,
    job.status === 'succeeded' && Number.isFinite(job.cost) ? plural(job.cost, 'credit') : null,
    formatDate(job.created_at),
  ].filter(Boolean);
  const body = h(
    'div',
    { class: 'job-body' },
    h('p', { class: 'job-name' }, job.filename),
    h('p', { class: 'job-meta' }, statusBadge(job.status), h('span', {}, details.join(' · '))),
    job.error?.message ? h('p', { class: 'job-error' }, job.error.message) : null,
  );
  const item = h('li', { class: 'job', 'data-job-id': job.id }, thumbnail(job), body);
  if (!actions) return item;

  const buttons = h('div', { class: 'job-actions' });
  if (job.status === 'succeeded') {
    buttons.append(
      h(
        'a',
        {
          class: 'btn btn-secondary btn-small',
          href: job.result_url || '#/history',
          'data-download': job.id,
          'aria-label': `Download ${job.filename}`,
          onclick: async (event) => {
            event.preventDefault();
            try {
              await download(job);
              toast(`Downloading ${job.filename}.`, 'success');
            } catch (error) {
              toast(error.message, 'error');
            }
          },
        },
        'Download',
      ),
    );
  }
  buttons.append(
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-danger btn-small',
        'data-delete': job.id,
        'aria-label': `Delete ${job.filename}`,
        onclick: async (event) => {
          const button = event.currentTarget;
          if (!window.confirm(`Delete “${job.filename}”? The photo and its result are removed for good.`)) return;
          button.disabled = true;
          try {
            await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
            await forgetJob(job.id);
            toast(`Deleted ${job.filename}.`, 'success');
            onDeleted?.(job, item);
          } catch (error) {
            button.disabled = false;
            toast(error.message, 'error');
          }
        },
      },
      'Delete',
    ),
  );
  item.append(buttons);
  return item;
}
