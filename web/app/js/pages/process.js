// One-step processing: pick photos, choose options, Process. Each photo gets a row with progress and its result.

import { api } from '../api.js';
import { download } from '../jobs.js';
import { allUploads, clearFinished, contentTypeOf, isDone, startBatch, subscribe } from '../uploads.js';
import { STATUS_LABELS, busy, field, formatBytes, h, pageTitle, plural, select, toast } from '../ui.js';

const PRESETS = [
  ['square', 'Square (1:1)'],
  ['amazon', 'Amazon'],
  ['zalando', 'Zalando'],
  ['shopify', 'Shopify'],
  ['portrait_4_5', 'Portrait (4:5)'],
];
const WHITE = '#ffffff';
const GREY = '#f2f2f2';

let catalogs = null; // {poses: {items, default}, backgrounds: {items}}

function catalogItems(data, kind) {
  return (data && (data.items || data[kind])) || [];
}

async function loadCatalogs(signal) {
  if (catalogs) return catalogs;
  const [poses, backgrounds] = await Promise.allSettled([
    api('/v1/catalog/poses', { signal }),
    api('/v1/catalog/backgrounds', { signal }),
  ]);
  const result = {
    poses: poses.status === 'fulfilled' ? { items: catalogItems(poses.value, 'poses'), default: poses.value.default } : null,
    backgrounds: backgrounds.status === 'fulfilled' ? { items: catalogItems(backgrounds.value, 'backgrounds') } : null,
  };
  if (result.poses && result.backgrounds) catalogs = result;
  return result;
}

function uploadRow(upload) {
  const badge = h('span', { class: 'badge', 'data-status': upload.status });
  const progress = h('progress', { max: '100', 'aria-label': `Progress of ${upload.name}` });
  const label = h('p', { class: 'upload-label' });
  const error = h('p', { class: 'upload-error', hidden: true });
  const result = h('div', { class: 'upload-result' });
  const row = h('li', { class: 'upload', 'data-upload': upload.key },
    h('div', { class: 'upload-head' },
      h('span', { class: 'filename' }, upload.name),
      h('span', { class: 'hint' }, formatBytes(upload.size)),
      badge),
    progress, label, error, result);

  row.paint = (u) => {
    badge.dataset.status = u.status;
    badge.textContent = STATUS_LABELS[u.status] || u.status;
    if (u.jobId) row.dataset.jobId = u.jobId;
    progress.hidden = u.status === 'error' || u.status === 'failed' || u.status === 'rejected';
    if (u.percent === null || u.percent === undefined) progress.removeAttribute('value');
    else progress.value = u.percent;
    progress.textContent = u.percent === null || u.percent === undefined ? '' : `${u.percent}%`;
    label.textContent = u.label || '';
    error.textContent = u.error || '';
    error.hidden = !u.error;
    row.classList.toggle('upload-failed', Boolean(u.error));
    if (u.result && !result.querySelector('img')) {
      result.append(
        h('img', { src: u.result, alt: `Result for ${u.name}`, 'data-result': u.jobId, class: 'result-image' }),
        h('a', {
          href: u.job?.result_url || '#/history',
          class: 'btn btn-secondary btn-small',
          'data-download': u.jobId,
          'aria-label': `Download the result for ${u.name}`,
          onclick: async (event) => {
            event.preventDefault();
            try {
              await download(u.job);
            } catch (err) {
              toast(err.message, 'error');
            }
          },
        }, 'Download'),
      );
    }
  };
  row.paint(upload);
  return row;
}

export default {
  title: 'Process photos',
  nav: 'process',
  async render(main, { signal }) {
    const fileInput = h('input', { id: 'file-input', name: 'photos', type: 'file', accept: 'image/*', multiple: true });
    const fileSummary = h('p', { class: 'hint', id: 'file-summary', 'aria-live': 'polite' }, 'No photos chosen yet.');
    const mode = select('mode', [['ghost', 'Ghost mannequin'], ['on-model', 'On-model']], 'ghost');
    const pose = select('pose', [['', 'Default pose']]);
    const poseField = field('Pose', pose, 'Used for on-model images.');
    const background = select('background', [
      [WHITE, 'White'],
      [GREY, 'Light grey'],
      ['transparent', 'Transparent'],
      ['custom', 'Custom colour'],
    ], WHITE);
    const colour = h('input', { id: 'background-colour', name: 'background-colour', type: 'color', value: '#ffffff' });
    const preset = select('preset', PRESETS, 'square');
    const priority = select('priority', [['normal', 'Normal'], ['low', 'Low']], 'normal');
    const format = select('output-format', [['png', 'PNG'], ['jpeg', 'JPEG'], ['webp', 'WebP'], ['avif', 'AVIF']], 'png');
    const shadow = select('shadow', [['contact', 'Contact shadow'], ['drop', 'Drop shadow'], ['none', 'No shadow']], 'contact');
    const hollow = h('input', { id: 'hollow', name: 'hollow', type: 'checkbox', checked: true });
    const hollowField = h('div', { class: 'field field-check' }, hollow, h('label', { for: 'hollow' }, 'Show the inside of the neck (hollow effect)'));
    const submit = h('button', { id: 'process-submit', type: 'submit', class: 'btn btn-primary' }, 'Process');
    const formError = h('p', { class: 'form-error', id: 'process-error', hidden: true });
    const list = h('ul', { id: 'upload-list', class: 'upload-list', 'aria-label': 'Photos being processed' });
    const clearButton = h('button', { type: 'button', id: 'uploads-clear', class: 'btn btn-quiet', hidden: true }, 'Clear finished');

    const syncMode = () => {
      poseField.hidden = mode.value !== 'on-model';
      hollowField.hidden = mode.value !== 'ghost';
    };
    mode.addEventListener('change', syncMode);
    syncMode();
    colour.addEventListener('input', () => {
      background.value = 'custom';
    });
    fileInput.addEventListener('change', () => {
      const files = Array.from(fileInput.files || []);
      const bytes = files.reduce((sum, f) => sum + f.size, 0);
      const unsupported = files.filter((f) => !contentTypeOf(f)).length;
      fileSummary.textContent = files.length
        ? `${plural(files.length, 'photo')} chosen (${formatBytes(bytes)})${unsupported ? `; ${unsupported} not a supported image type` : ''}.`
        : 'No photos chosen yet.';
    });

    const form = h('form', { class: 'card stack', id: 'process-form' },
      h('div', { class: 'field' },
        h('label', { for: 'file-input' }, 'Photos'),
        fileInput,
        fileSummary),
      h('div', { class: 'grid-2' },
        field('Image type', mode, 'Ghost: the garment alone, mannequin removed. On-model: worn by a generated model.'),
        poseField,
        field('Background', background),
        field('Custom background colour', colour, 'Picking a colour selects “Custom colour”.'),
        field('Marketplace size', preset),
        field('Priority', priority, 'Low-priority photos are processed when the service is quiet.')),
      h('details', { class: 'more-options' },
        h('summary', {}, 'More options'),
        h('div', { class: 'grid-2' }, field('File format', format), field('Shadow', shadow), hollowField)),
      formError,
      h('div', { class: 'actions' }, submit));

    const options = () => {
      const chosen = {
        preset: preset.value,
        background: background.value === 'custom' ? colour.value : background.value,
        output_format: format.value,
        shadow: shadow.value,
      };
      if (mode.value === 'ghost') chosen.hollow = hollow.checked;
      if (mode.value === 'on-model' && pose.value) chosen.pose_id = pose.value;
      return chosen;
    };

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      formError.hidden = true;
      const files = Array.from(fileInput.files || []);
      const problem = !files.length
        ? 'Choose at least one photo.'
        : options().background === 'transparent' && format.value === 'jpeg'
          ? 'JPEG has no transparency: choose PNG, WebP or AVIF for a transparent background.'
          : '';
      if (problem) {
        formError.textContent = problem;
        formError.hidden = false;
        toast(problem, 'error');
        (files.length ? format : fileInput).focus();
        return;
      }
      const request = { mode: mode.value, options: options(), priority: priority.value };
      busy(submit, async () => {
        toast(`Sending ${plural(files.length, 'photo')}…`);
        const batch = await startBatch(files, request);
        fileInput.value = '';
        fileSummary.textContent = 'No photos chosen yet.';
        const failed = batch.filter((u) => u.status === 'error').length;
        if (failed === batch.length) toast(failed === 1 ? batch[0].error : `None of the ${batch.length} photos could be sent. See the messages below.`, 'error');
        else if (failed) toast(`${failed} of ${batch.length} photos could not be sent. See the messages below.`, 'error');
        else toast(`${plural(batch.length, 'photo')} uploaded. Results appear below when they are ready.`, 'success');
      });
    });

    clearButton.addEventListener('click', () => clearFinished());

    const renderList = () => {
      const rows = new Map(Array.from(list.children, (row) => [row.dataset.upload, row]));
      const wanted = allUploads();
      for (const [key, row] of rows) if (!wanted.some((u) => u.key === key)) row.remove();
      wanted.forEach((upload, index) => {
        const row = rows.get(upload.key) || uploadRow(upload);
        if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
      });
      clearButton.hidden = !wanted.some(isDone);
    };
    const unsubscribe = subscribe((changed) => {
      if (changed === null) return renderList();
      const row = list.querySelector(`[data-upload="${changed.key}"]`);
      if (row) row.paint(changed);
      else renderList();
      clearButton.hidden = !allUploads().some(isDone);
    });
    signal.addEventListener('abort', unsubscribe);

    main.append(
      pageTitle('Process photos'),
      h('p', { class: 'lead' }, 'Choose one or more garment photos, pick the look, and press Process. Each photo costs credits only when its image is made.'),
      form,
      h('section', { 'aria-labelledby': 'uploads-heading', class: 'uploads' },
        h('div', { class: 'section-head' }, h('h2', { id: 'uploads-heading' }, 'Your photos'), clearButton),
        list,
        h('p', { class: 'hint' }, 'You can leave this page: processing continues and results also appear in ', h('a', { href: '#/history' }, 'History'), '.')),
    );
    renderList();

    const loaded = await loadCatalogs(signal);
    if (signal.aborted) return;
    if (loaded.poses) {
      pose.replaceChildren(...loaded.poses.items.map((p) => h('option', { value: p.id }, p.name || p.id)));
      if (loaded.poses.default) pose.value = loaded.poses.default;
    }
    if (loaded.backgrounds?.items.length) {
      background.append(h('optgroup', { label: 'Backgrounds library' },
        loaded.backgrounds.items.map((b) => h('option', { value: `library:${b.id}` }, b.name || b.id))));
    }
  },
};
