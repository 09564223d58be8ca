// One job's page (#/jobs/<id>): the original photo beside the result, status, options in words, cost and the error
// in words; Download, View (zoom and before/after), Make another version (new options on the same stored photo, no
// upload), Retry (failed, refused or cancelled jobs) and Delete. Polls until the job has finished.

import { api } from '../api.js';
import { FALLBACK, loadCapabilities, presetAllows } from '../capabilities.js';
import {
  FORMAT_NAMES, SHADOW_NAMES, backgroundName, costInWords, deleteJob, download, jobHref, optionsInWords, stageBadge,
} from '../jobs.js';
import { jobErrorText } from '../errors.js';
import * as offline from '../offline.js';
import { go } from '../router.js';
import { FINAL_STATUSES, busy, field, formatDate, h, pageTitle, plural, select, toast } from '../ui.js';
import { openViewer } from '../viewer.js';

const POLL_MS = 1500;
const RETRYABLE = new Set(['failed', 'rejected', 'cancelled']);
const WHITE = '#ffffff';
const GREY = '#f2f2f2';

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

let catalogue = null; // {backgrounds: [...]} once loaded

async function loadBackgrounds(signal) {
  if (catalogue) return catalogue;
  try {
    const data = await api('/v1/catalog/backgrounds', { signal });
    catalogue = { backgrounds: (data && (data.items || data.backgrounds)) || [] };
    return catalogue;
  } catch {
    return { backgrounds: [] };
  }
}

function presetList(capabilities) {
  if (capabilities?.presets?.length) return capabilities.presets;
  return FALLBACK.presets;
}

function modeCost(capabilities, mode) {
  const found = (capabilities?.modes || FALLBACK.modes).find((m) => m.id === mode);
  if (found && Number.isFinite(found.cost)) return found.cost;
  return mode === 'on-model' ? 4 : 1;
}

/** A preset's background rule, in its own words, when the chosen background breaks it; null when it is fine. */
function presetProblem(preset, background) {
  if (!preset || presetAllows(preset, background)) return null;
  const allowed = (preset.backgrounds || []).map((b) => backgroundName(b)).join(' or ');
  return preset.rule
    ? `${preset.rule} Choose ${allowed}, or another marketplace size.`
    : `${preset.name} does not allow this background. Choose ${allowed}, or another marketplace size.`;
}

/** The form of "Make another version": the job's own options as defaults. */
function rerenderForm(job, { capabilities, backgrounds, onDone, onCancel }) {
  const o = job.options || {};
  const presets = presetList(capabilities);
  const current = (o.background || '').toLowerCase();
  const fixed = [[WHITE, 'White'], [GREY, 'Light grey'], ['transparent', 'Transparent']];
  const isCustom = current && current.startsWith('#') && !fixed.some(([v]) => v === current);
  const background = select('rerender-background', [
    ...(o.background ? [] : [['', 'The marketplace’s standard']]),
    ...fixed,
    ...(backgrounds.length ? [{ group: 'Backgrounds library', options: backgrounds.map((b) => [`library:${b.id}`, b.name || b.id]) }] : []),
    ['custom', 'Custom colour'],
  ], isCustom ? 'custom' : current);
  const colour = h('input', { id: 'rerender-colour', name: 'rerender-colour', type: 'color', value: isCustom ? current : WHITE });
  const colourField = field('Custom colour', colour);
  const preset = select('rerender-preset', presets.map((p) => [p.id, p.name]), o.preset || 'square');
  const presetHint = h('p', { class: 'hint', id: 'rerender-preset-hint' });
  preset.setAttribute('aria-describedby', presetHint.id);
  const format = select('rerender-format', Object.entries(FORMAT_NAMES), o.output_format || 'png');
  const shadow = select('rerender-shadow', Object.entries(SHADOW_NAMES), o.shadow || 'contact');
  const hollow = h('input', { id: 'rerender-hollow', name: 'rerender-hollow', type: 'checkbox', checked: o.hollow !== false });
  const cost = modeCost(capabilities, job.mode);
  const balance = Number.isFinite(capabilities?.balance) ? capabilities.balance : null;
  const costLine = h('p', { class: 'hint', id: 'rerender-cost' },
    `The new image is made from the photo already stored, without uploading it again. It costs ${plural(cost, 'credit')}`,
    balance === null ? '.' : `; you have ${balance}.`);
  const problem = h('p', { class: 'form-error', id: 'rerender-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'rerender-submit' }, 'Make this version');
  const cancel = h('button', { type: 'button', class: 'btn btn-quiet', id: 'rerender-cancel' }, 'Cancel');

  const ghost = job.mode === 'ghost';
  const form = h('form', { class: 'card stack rerender', id: 'rerender-form', 'aria-labelledby': 'rerender-heading' },
    h('h2', { id: 'rerender-heading' }, 'Make another version'),
    costLine,
    h('div', { class: 'grid-2' },
      field('Background', background),
      colourField,
      h('div', { class: 'field' }, h('label', { for: preset.id }, 'Marketplace size'), preset, presetHint),
      field('File format', format),
      ghost ? field('Shadow', shadow) : null,
      ghost ? h('div', { class: 'field field-check' }, hollow, h('label', { for: hollow.id }, 'Show the inside of the neck (hollow effect)')) : null),
    problem,
    h('div', { class: 'actions' }, submit, cancel));

  const chosenBackground = () => (background.value === 'custom' ? colour.value : background.value || null);
  const check = () => {
    colourField.hidden = background.value !== 'custom';
    const p = presets.find((x) => x.id === preset.value);
    presetHint.textContent = p ? p.description || (p.width && p.height ? `${p.width} × ${p.height} pixels.` : '') : '';
    presetHint.hidden = !presetHint.textContent;
    let message = '';
    let blocking = false;
    const rule = presetProblem(p, chosenBackground());
    if (balance !== null && cost > balance) {
      message = `You need ${plural(cost, 'credit')} and have ${balance}. Buy credits on the Credits page first.`;
      blocking = true;
    } else if (chosenBackground() === 'transparent' && format.value === 'jpeg') {
      message = 'JPEG has no transparency: choose PNG, WebP or AVIF for a transparent background.';
      blocking = true;
    } else if (rule) {
      message = rule;
      blocking = true; // the API refuses it too (preset_background)
    }
    problem.textContent = message;
    problem.hidden = !message;
    problem.classList.toggle('form-warning', Boolean(message) && !blocking);
    if (blocking && balance !== null && cost > balance) {
      problem.append(' ', h('a', { href: '#/credits' }, 'Buy credits'));
    }
    return !blocking;
  };
  for (const control of [background, colour, preset, format]) control.addEventListener('change', check);
  colour.addEventListener('input', () => { background.value = 'custom'; check(); });
  check();

  cancel.addEventListener('click', onCancel);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!check()) return;
    const options = { ...o, preset: preset.value, output_format: format.value };
    const bg = chosenBackground();
    if (bg) options.background = bg;
    else delete options.background;
    if (ghost) {
      options.shadow = shadow.value;
      options.hollow = hollow.checked;
    }
    busy(submit, async () => {
      try {
        const made = await api(`/v1/jobs/${encodeURIComponent(job.id)}/rerender`, {
          method: 'POST',
          body: { options, priority: job.priority || 'normal' },
        });
        toast('Making the new version. It appears here when it is ready.', 'success');
        onDone(made.job_id || made.job?.id);
      } catch (error) {
        problem.textContent = error.message;
        problem.hidden = false;
        toast(error.message, 'error');
      }
    });
  });
  return form;
}

export default {
  title: 'Image',
  nav: 'history',
  refreshWhenOnline: true,
  async render(main, { id, signal }) {
    const title = pageTitle('Image');
    const status = h('div', { class: 'job-status', id: 'job-status', 'aria-live': 'polite' });
    const source = h('p', { class: 'hint', id: 'job-source', hidden: true });
    const errorBox = h('p', { class: 'notice notice-error', id: 'job-error', hidden: true });
    const figures = h('div', { class: 'job-figures', id: 'job-figures' });
    const actions = h('div', { class: 'actions job-page-actions', id: 'job-actions' });
    const formSlot = h('div', { id: 'rerender-slot' });
    const facts = h('dl', { class: 'facts', id: 'job-facts' });
    main.append(
      h('p', { class: 'back' }, h('a', { href: '#/history' }, '← All jobs')),
      title,
      status,
      source,
      errorBox,
      figures,
      actions,
      formSlot,
      h('section', { class: 'card', 'aria-labelledby': 'job-details-heading' },
        h('h2', { id: 'job-details-heading' }, 'Details'),
        facts),
    );

    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
    } catch (error) {
      if (signal.aborted) return;
      title.textContent = error.code === 'not_found' ? 'Job not found' : 'This job could not be shown';
      main.querySelector('.card')?.remove();
      errorBox.hidden = false;
      errorBox.textContent = error.code === 'not_found'
        ? 'This job does not exist or has been deleted.'
        : error.message;
      return;
    }
    if (signal.aborted) return;
    let backgrounds = catalogue?.backgrounds || [];
    let capabilities = null;

    let shownKey = '';
    let formOpen = false;

    const openForm = (toggle) => {
      formOpen = true;
      toggle?.setAttribute('aria-expanded', 'true');
      const form = rerenderForm(job, {
        capabilities,
        backgrounds,
        onDone: (newId) => go(jobHref(newId)),
        onCancel: () => {
          formOpen = false;
          formSlot.replaceChildren();
          const again = actions.querySelector('#job-rerender');
          again?.setAttribute('aria-expanded', 'false');
          again?.focus();
        },
      });
      formSlot.replaceChildren(form);
      form.querySelector('select')?.focus();
    };

    const view = (event) => openViewer({
      name: job.filename,
      before: job.original_url || null,
      after: offline.resultSrc(job),
      opener: event?.currentTarget || null,
    });

    const paint = () => {
      // repainting replaces the buttons: keep the focus on the same one
      const focused = actions.contains(document.activeElement) || figures.contains(document.activeElement) ? document.activeElement.id : '';
      paintNow();
      if (focused) document.getElementById(focused)?.focus();
    };
    const paintNow = () => {
      document.title = `${job.filename} · Modamoda`;
      title.textContent = job.filename;
      const final = FINAL_STATUSES.has(job.status);

      // status: one label (the badge), a bar while it runs
      status.replaceChildren(stageBadge(job.status));
      if (!final) {
        const percent = job.progress?.percent ?? 0;
        status.append(h('progress', { max: '100', value: String(percent), 'aria-label': `Progress of ${job.filename}` }));
      }

      source.hidden = !job.source_job_id;
      if (job.source_job_id) {
        source.replaceChildren('Another version of the same photo. ', h('a', { href: jobHref(job.source_job_id), id: 'job-source-link' }, 'Open the version it was made from'), '.');
      }

      const errorText = RETRYABLE.has(job.status) ? jobErrorText(job.error) : null;
      errorBox.hidden = !errorText;
      errorBox.textContent = errorText || '';

      // the original photo and the result
      const resultUrl = job.status === 'succeeded' ? offline.resultSrc(job) : null;
      const original = job.original_url
        ? h('img', { src: job.original_url, alt: `Original photo: ${job.filename}`, class: 'job-image job-image-photo', id: 'job-original', decoding: 'async' })
        : h('p', { class: 'job-image-empty' }, job.status === 'awaiting_upload' ? 'The photo has not arrived yet.' : 'The original photo is not available.');
      let result;
      if (resultUrl) {
        result = h('button', { type: 'button', class: 'job-image-button', id: 'job-result-open', 'aria-label': `View ${job.filename} larger` },
          h('img', { src: resultUrl, alt: `Result: ${job.filename}`, class: 'job-image', id: 'job-result', 'data-result': job.id, decoding: 'async' }));
        result.addEventListener('click', view);
      } else {
        result = h('p', { class: `job-image-empty${final ? ' job-image-none' : ''}` }, final ? 'No image was made.' : 'The image is being made…');
      }
      figures.replaceChildren(
        h('figure', { class: 'job-figure job-figure-original' }, original, h('figcaption', {}, 'Original photo')),
        h('figure', { class: 'job-figure job-figure-result' }, result, h('figcaption', {}, 'Result')),
      );

      // actions
      actions.replaceChildren();
      if (job.status === 'succeeded') {
        const dl = h('button', { type: 'button', class: 'btn btn-primary', id: 'job-download' }, 'Download');
        dl.addEventListener('click', () => busy(dl, async () => {
          try {
            await download(job);
            toast(`Downloading ${job.filename}.`, 'success');
          } catch (error) {
            toast(error.message, 'error');
          }
        }));
        const viewButton = h('button', { type: 'button', class: 'btn btn-secondary', id: 'job-view' }, job.original_url ? 'View and compare' : 'View larger');
        viewButton.addEventListener('click', view);
        actions.append(dl, viewButton);
      }
      if (RETRYABLE.has(job.status)) {
        const retry = h('button', { type: 'button', class: 'btn btn-primary', id: 'job-retry' }, 'Retry');
        retry.addEventListener('click', () => busy(retry, async () => {
          try {
            const made = await api(`/v1/jobs/${encodeURIComponent(job.id)}/retry`, { method: 'POST' });
            toast('Trying this photo again.', 'success');
            go(jobHref(made.job_id || made.job?.id));
          } catch (error) {
            toast(error.message, 'error');
            errorBox.hidden = false;
            errorBox.textContent = error.message;
          }
        }));
        actions.append(retry);
      }
      // any finished job whose photo is stored (the API answers original_unavailable, in words, when it is gone)
      if (final && job.status !== 'cancelled') {
        const again = h('button', { type: 'button', class: 'btn btn-secondary', id: 'job-rerender', 'aria-expanded': String(formOpen), 'aria-controls': 'rerender-slot' }, 'Make another version');
        again.addEventListener('click', () => {
          if (formOpen) {
            formOpen = false;
            formSlot.replaceChildren();
            again.setAttribute('aria-expanded', 'false');
          } else {
            openForm(again);
          }
        });
        actions.append(again);
      }
      const del = h('button', { type: 'button', class: 'btn btn-danger', id: 'job-delete' }, 'Delete');
      del.addEventListener('click', async () => {
        if (await deleteJob(job, del)) go('#/history');
      });
      actions.append(del);

      // details
      const rows = [
        ['Status', stageBadge(job.status)],
        ['Cost', costInWords(job)],
        ...optionsInWords(job, { library: backgrounds, presets: presetList(capabilities) }),
        ['Priority', job.priority === 'low' ? 'Low' : 'Normal'],
        job.sku ? ['SKU', job.sku] : null,
        ['Sent', formatDate(job.created_at)],
        job.status === 'succeeded' && job.stages?.succeeded ? ['Ready', formatDate(job.stages.succeeded)] : null,
      ].filter(Boolean);
      facts.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v)]));
    };

    paint();
    shownKey = `${job.status}|${job.updated_at}`;
    // names of library backgrounds and presets, costs and the balance (for the form): shown once they are known
    [{ backgrounds }, capabilities] = await Promise.all([
      loadBackgrounds(signal),
      loadCapabilities({ signal, fresh: true }).catch(() => null),
    ]);
    if (signal.aborted) return;
    paint();

    // follow the job until it has finished
    while (!FINAL_STATUSES.has(job.status) && !signal.aborted) {
      await sleep(POLL_MS, signal);
      if (signal.aborted) return;
      try {
        job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
      } catch (error) {
        if (signal.aborted) return;
        if (error.code === 'not_found') {
          toast('This job has been deleted.', 'error');
          go('#/history');
          return;
        }
        continue; // offline for a moment: keep trying
      }
      if (signal.aborted) return;
      const key = `${job.status}|${job.updated_at}`;
      if (key !== shownKey) {
        shownKey = key;
        paint();
        if (FINAL_STATUSES.has(job.status)) {
          toast(job.status === 'succeeded' ? `${job.filename} is ready.` : jobErrorText(job.error) || `${job.filename} has stopped.`, job.status === 'succeeded' ? 'success' : 'error');
        }
      }
    }
  },
};
