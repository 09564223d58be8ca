// Jobs as people see them: a list/grid item (small thumbnail, file name linking to the job's page, status, the
// error in words, download and delete), one-image and many-image (ZIP) downloads, and a job's options in words.

import { api } from './api.js';
import { jobErrorText } from './errors.js';
import * as offline from './offline.js';
import { stageOf } from './stages.js';
import { MODE_LABELS, formatDate, h, plural, toast } from './ui.js';

/** The status badge with the same stage label the processing page shows (js/stages.js); data-status for styles. */
export function stageBadge(status) {
  return h('span', { class: 'badge', 'data-status': status }, stageOf({ status }).label);
}

/** The job's own page. */
export function jobHref(job) {
  return `#/jobs/${encodeURIComponent(job.id ?? job)}`;
}

/**
 * The small preview for lists: the WebP thumbnail the pipeline makes once per result — never the full-size result
 * (lists of 50 rows would download tens of megabytes). A job without a thumbnail gets an empty tile.
 */
export function thumbSource(job) {
  if (job?.status !== 'succeeded') return null;
  if (typeof offline.thumbSrc === 'function') return offline.thumbSrc(job);
  return job.thumbnail_url || null;
}

export function thumbnail(job, size = 72) {
  const src = thumbSource(job);
  if (!src) return h('div', { class: 'thumb thumb-empty', 'aria-hidden': 'true' });
  return h('img', {
    class: 'thumb',
    src,
    alt: '', // the file name beside it names the job
    width: size,
    height: size,
    loading: 'lazy',
    decoding: 'async',
    'data-result': job.id,
    'data-thumb': job.id,
  });
}

/** Hand a short-lived link to the browser as a download (attachment, no page change). */
function saveLink(url, filename) {
  if (!/^https?:$/i.test(new URL(url, location.href).protocol)) throw new Error('The download link is not valid. Try again.');
  const link = h('a', { href: url, download: filename || '', hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/** Ask for a short-lived download link of one result and hand it to the browser. */
export async function download(job) {
  const { url, filename } = await api(`/v1/jobs/${encodeURIComponent(job.id)}/download`);
  saveLink(url, filename || job.filename);
}

/** One ZIP of several results (POST /v1/jobs/archive); resolves with the archive's description. */
export async function downloadArchive(jobIds) {
  const archive = await api('/v1/jobs/archive', { method: 'POST', body: { job_ids: jobIds } });
  saveLink(archive.url, archive.filename || 'modamoda-images.zip');
  return archive;
}

// ---- options in words ------------------------------------------------------------------------------------------

export const PRESET_NAMES = {
  square: 'Square (1:1)',
  amazon: 'Amazon',
  zalando: 'Zalando',
  shopify: 'Shopify',
  portrait_4_5: 'Portrait (4:5)',
};
export const FORMAT_NAMES = { png: 'PNG', jpeg: 'JPEG', webp: 'WebP', avif: 'AVIF' };
export const SHADOW_NAMES = { contact: 'Contact shadow', drop: 'Drop shadow', none: 'No shadow' };
const COLOUR_NAMES = { '#ffffff': 'White', '#f2f2f2': 'Light grey', '#f1f1f1': 'Light grey', '#000000': 'Black' };

/** "studio-grey" → "Studio grey" (a catalogue id, when its name is not at hand). */
export function idInWords(id) {
  const words = String(id).replace(/[-_]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** "library:studio-grey" → "Studio grey sweep" (from the catalogue when known), "#ffffff" → "White". */
export function backgroundName(value, library = []) {
  if (!value) return 'The marketplace’s standard background';
  if (value === 'transparent') return 'Transparent';
  if (value.startsWith('library:')) {
    const id = value.slice('library:'.length);
    return library.find((b) => b.id === id)?.name || idInWords(id);
  }
  return COLOUR_NAMES[value.toLowerCase()] || `Colour ${value.toUpperCase()}`;
}

/** [label, value] pairs describing what was asked for, in a customer's words. */
export function optionsInWords(job, { library = [], presets = [] } = {}) {
  const o = job.options || {};
  const preset = presets.find((p) => p.id === (o.preset || 'square'));
  const size = preset
    ? `${preset.name}${preset.width && preset.height ? ` (${preset.width} × ${preset.height} px)` : ''}`
    : PRESET_NAMES[o.preset || 'square'] || o.preset;
  const rows = [
    ['Image type', MODE_LABELS[job.mode] || job.mode],
    ['Background', backgroundName(o.background, library)],
    ['Marketplace size', size],
    ['File format', FORMAT_NAMES[o.output_format || 'png'] || String(o.output_format).toUpperCase()],
  ];
  if (job.mode === 'ghost') {
    rows.push(['Shadow', SHADOW_NAMES[o.shadow || 'contact'] || o.shadow]);
    rows.push(['Hollow neck', o.hollow === false ? 'No' : 'Yes']);
  }
  if (job.mode === 'on-model' && o.pose_id) rows.push(['Pose', idInWords(o.pose_id)]);
  return rows;
}

/** What the job cost, in words. */
export function costInWords(job) {
  if (job.status === 'succeeded') return Number.isFinite(job.cost) ? plural(job.cost, 'credit') : 'Charged';
  if (['failed', 'rejected', 'cancelled'].includes(job.status)) return 'Nothing: no credits were charged';
  if (Number.isFinite(job.cost) && job.cost > 0) return `${plural(job.cost, 'credit')}, held until the image is ready`;
  return 'Charged when the image is ready';
}

// ---- list / grid item ----------------------------------------------------------------------------------------

/**
 * <li data-job-id>: the file name is a link to the job's page that covers the whole item; buttons and the
 * checkbox stay clickable above it. `actions`: download/delete buttons; `onDeleted(job, item)` after a delete;
 * `selectable`: a checkbox on finished images, `onSelect(job, checked)` when it changes.
 */
export function jobItem(job, { actions = false, onDeleted, selectable = false, selected = false, onSelect } = {}) {
  const details = [
    MODE_LABELS[job.mode] || job.mode,
    job.status === 'succeeded' && Number.isFinite(job.cost) ? plural(job.cost, 'credit') : null,
    formatDate(job.created_at),
  ].filter(Boolean);
  const errorText = ['failed', 'rejected', 'cancelled'].includes(job.status) ? jobErrorText(job.error) : null;
  const body = h(
    'div',
    { class: 'job-body' },
    h('p', { class: 'job-name' }, h('a', { class: 'job-link', href: jobHref(job), 'data-open': job.id }, job.filename)),
    h('p', { class: 'job-meta' }, stageBadge(job.status), h('span', { class: 'job-details' }, details.join(' · '))),
    errorText ? h('p', { class: 'job-error' }, errorText) : null,
  );
  const item = h('li', { class: `job${selectable ? ' job-selectable' : ''}`, 'data-job-id': job.id, 'data-status': job.status });
  if (selectable) {
    if (job.status === 'succeeded') {
      const box = h('input', {
        type: 'checkbox',
        class: 'job-select',
        id: `select-${job.id}`,
        'data-select': job.id,
        'aria-label': `Select ${job.filename}`,
        checked: selected,
      });
      box.addEventListener('change', () => {
        item.classList.toggle('is-selected', box.checked);
        onSelect?.(job, box.checked);
      });
      item.classList.toggle('is-selected', selected);
      item.append(h('div', { class: 'job-check' }, box));
    } else {
      item.append(h('div', { class: 'job-check', 'aria-hidden': 'true' }));
    }
  }
  item.append(thumbnail(job), body);
  if (!actions) return item;

  const buttons = h('div', { class: 'job-actions' });
  if (job.status === 'succeeded') {
    buttons.append(
      h(
        'a',
        {
          class: 'btn btn-secondary btn-small',
          href: jobHref(job),
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
          if (!(await deleteJob(job, button))) return;
          onDeleted?.(job, item);
        },
      },
      'Delete',
    ),
  );
  item.append(buttons);
  return item;
}

/** Confirm, delete, forget the cached images; true when deleted. */
export async function deleteJob(job, button) {
  if (!window.confirm(`Delete “${job.filename}”? The photo and its result are removed for good.`)) return false;
  button.disabled = true;
  try {
    await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
    await offline.forgetJob(job.id);
    toast(`Deleted ${job.filename}.`, 'success');
    return true;
  } catch (error) {
    button.disabled = false;
    toast(error.message, 'error');
    return false;
  }
}
