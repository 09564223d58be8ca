// History: search and filter jobs, page with a cursor, a grid or a list of small thumbnails (each job opens its own
// page), select finished images and download them as one ZIP, download and delete one. Offline it shows the cached
// list.

import { api } from '../api.js';
import { downloadArchive, jobItem } from '../jobs.js';
import { busy, field, formatBytes, h, isOffline, pageTitle, plural, select, toast } from '../ui.js';

const PAGE_SIZE = 20;
const VIEW_KEY = 'modamoda.history.view';
const STATUS_FILTERS = [
  ['', 'Any status'],
  ['succeeded', 'Done'],
  ['queued,validated,processing', 'In progress'],
  ['awaiting_upload', 'Waiting to start'],
  ['failed', 'Failed'],
  ['rejected', 'Refused'],
  ['cancelled', 'Cancelled'],
];

// Kept while the app is open, so coming back to History shows the same filters.
const filters = { q: '', mode: '', status: '', from: '', to: '' };

/** Start of a local calendar day as an ISO time (the API compares UTC times). */
function dayStart(date, addDays = 0) {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(y, m - 1, d + addDays).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function queryFor(cursor) {
  return {
    limit: PAGE_SIZE,
    q: filters.q.trim(),
    mode: filters.mode,
    status: filters.status,
    created_after: filters.from ? dayStart(filters.from) : '',
    created_before: filters.to ? dayStart(filters.to, 1) : '',
    cursor,
  };
}

function savedView() {
  try {
    return localStorage.getItem(VIEW_KEY) === 'list' ? 'list' : 'grid';
  } catch {
    return 'grid';
  }
}

export default {
  title: 'History',
  nav: 'history',
  refreshWhenOnline: true,
  async render(main, { signal }) {
    const search = h('input', { id: 'history-search', name: 'q', type: 'search', autocomplete: 'off', value: filters.q });
    const mode = select('history-mode', [['', 'All image types'], ['ghost', 'Ghost mannequin'], ['on-model', 'On-model']], filters.mode);
    const status = select('history-status', STATUS_FILTERS, filters.status);
    const from = h('input', { id: 'history-from', name: 'from', type: 'date', value: filters.from });
    const to = h('input', { id: 'history-to', name: 'to', type: 'date', value: filters.to });
    const list = h('ul', { id: 'history-list', class: 'job-list', 'aria-label': 'Your jobs' });
    const empty = h('p', { class: 'empty', hidden: true });
    const more = h('button', { id: 'history-more', type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
    const summary = h('p', { class: 'hint', 'aria-live': 'polite' });

    // view: grid of results or list of rows (the same items, styled two ways)
    let view = savedView();
    const gridButton = h('button', { type: 'button', class: 'btn btn-small btn-toggle', id: 'history-view-grid' }, 'Grid');
    const listButton = h('button', { type: 'button', class: 'btn btn-small btn-toggle', id: 'history-view-list' }, 'List');
    const showView = () => {
      list.classList.toggle('job-grid', view === 'grid');
      gridButton.setAttribute('aria-pressed', String(view === 'grid'));
      listButton.setAttribute('aria-pressed', String(view === 'list'));
    };
    const setView = (next) => {
      view = next;
      try {
        localStorage.setItem(VIEW_KEY, next);
      } catch {
        // private mode: the choice lasts while the page is open
      }
      showView();
    };
    gridButton.addEventListener('click', () => setView('grid'));
    listButton.addEventListener('click', () => setView('list'));
    showView();

    // selection and ZIP download of finished images
    const selected = new Map(); // job id → job
    const finished = new Map(); // every finished job shown, in order
    const selectAll = h('input', { type: 'checkbox', id: 'history-select-all' });
    const selectionText = h('span', { class: 'hint', id: 'history-selection', 'aria-live': 'polite' });
    const downloadSelected = h('button', { type: 'button', class: 'btn btn-primary btn-small', id: 'history-download-selected', disabled: true }, 'Download selected');
    const downloadAll = h('button', { type: 'button', class: 'btn btn-secondary btn-small', id: 'history-download-all', disabled: true }, 'Download all');
    const toolbar = h('div', { class: 'history-toolbar' },
      h('div', { class: 'view-toggle', role: 'group', 'aria-label': 'Show as' }, gridButton, listButton),
      h('div', { class: 'selection-bar' },
        h('div', { class: 'field-check' }, selectAll, h('label', { for: selectAll.id }, 'Select all')),
        selectionText,
        downloadSelected,
        downloadAll));

    const paintSelection = () => {
      const n = selected.size;
      selectionText.textContent = n ? `${plural(n, 'image')} selected.` : '';
      downloadSelected.disabled = n === 0;
      downloadSelected.hidden = n === 0;
      downloadSelected.textContent = n ? `Download ${n} as ZIP` : 'Download selected';
      downloadAll.disabled = finished.size === 0;
      downloadAll.textContent = !finished.size ? 'Download all'
        : cursor ? `Download the ${finished.size} shown as ZIP` : `Download all ${finished.size} as ZIP`;
      selectAll.checked = finished.size > 0 && n === finished.size;
      selectAll.indeterminate = n > 0 && n < finished.size;
      selectAll.disabled = finished.size === 0;
    };
    const onSelect = (job, checked) => {
      if (checked) selected.set(job.id, job);
      else selected.delete(job.id);
      paintSelection();
    };
    selectAll.addEventListener('change', () => {
      for (const box of list.querySelectorAll('input[data-select]')) {
        if (box.checked !== selectAll.checked) {
          box.checked = selectAll.checked;
          box.dispatchEvent(new Event('change'));
        }
      }
      paintSelection();
    });
    const zip = (button, jobs) => busy(button, async () => {
      if (!jobs.length) return;
      toast(`Preparing one ZIP of ${plural(jobs.length, 'image')}…`);
      try {
        const archive = await downloadArchive(jobs.map((j) => j.id));
        const count = archive.count ?? jobs.length;
        toast(`Downloading ${plural(count, 'image')} as one ZIP${archive.bytes ? ` (${formatBytes(archive.bytes)})` : ''}.`, 'success');
      } catch (error) {
        toast(error.message, 'error');
      }
    });
    downloadSelected.addEventListener('click', () => zip(downloadSelected, [...selected.values()]));
    downloadAll.addEventListener('click', () => zip(downloadAll, [...finished.values()]));

    let cursor = null;
    let sequence = 0;
    let shown = 0;

    const removed = (job) => {
      shown -= 1;
      selected.delete(job.id);
      finished.delete(job.id);
      paintSelection();
      summary.textContent = `${shown} shown.`;
      if (!list.children.length && !cursor) showEmpty();
    };

    function showEmpty(message) {
      const filtered = filters.q || filters.mode || filters.status || filters.from || filters.to;
      empty.hidden = false;
      if (message) empty.textContent = message;
      else if (filtered) empty.textContent = 'No jobs match these filters.';
      else empty.replaceChildren('No jobs yet. ', h('a', { href: '#/process' }, 'Process your first photo'), '.');
    }

    async function load(reset) {
      const mine = (sequence += 1);
      list.setAttribute('aria-busy', 'true');
      more.disabled = true;
      let page;
      try {
        page = await api('/v1/jobs', { query: queryFor(reset ? undefined : cursor), signal });
      } catch (error) {
        if (signal.aborted || mine !== sequence) return;
        list.removeAttribute('aria-busy');
        more.disabled = false;
        if (reset) {
          list.replaceChildren();
          selected.clear();
          finished.clear();
          paintSelection();
          cursor = null;
          more.hidden = true;
          summary.textContent = '';
          showEmpty(error.code === 'offline'
            ? 'You are offline and this list has not been saved on this device yet. Reconnect to see your jobs.'
            : error.message);
        } else {
          toast(error.code === 'offline' ? 'You are offline: older jobs cannot be loaded now.' : error.message, 'error');
        }
        return;
      }
      if (signal.aborted || mine !== sequence) return;
      list.removeAttribute('aria-busy');
      if (reset) {
        list.replaceChildren();
        selected.clear();
        finished.clear();
        shown = 0;
      }
      for (const job of page.items) if (job.status === 'succeeded') finished.set(job.id, job);
      list.append(...page.items.map((job) => jobItem(job, {
        actions: true,
        selectable: true,
        onSelect,
        onDeleted: (_job, item) => { item.remove(); removed(job); },
      })));
      shown += page.items.length;
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      more.disabled = false;
      empty.hidden = true;
      if (!shown) showEmpty();
      summary.textContent = shown ? `${shown} shown${cursor ? ', more available' : ''}${isOffline() ? ' (saved copy)' : ''}.` : '';
      paintSelection();
    }

    const apply = () => {
      Object.assign(filters, { q: search.value, mode: mode.value, status: status.value, from: from.value, to: to.value });
      load(true);
    };
    let debounce = 0;
    search.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(apply, 300);
    });
    signal.addEventListener('abort', () => clearTimeout(debounce));
    for (const control of [mode, status, from, to]) control.addEventListener('change', apply);
    more.addEventListener('click', () => load(false));

    const moreFilters = h('details', { class: 'more-options history-more-filters', open: Boolean(filters.mode || filters.status || filters.from || filters.to) },
      h('summary', {}, 'Filter by type, status and date'),
      h('div', { class: 'filters' },
        field('Image type', mode),
        field('Status', status),
        field('From', from),
        field('To', to)));
    const form = h('form', { class: 'card history-filters', role: 'search', 'aria-label': 'Filter jobs' },
      h('div', { class: 'search-row' },
        field('Search by file name', search),
        h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Apply')),
      moreFilters);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearTimeout(debounce);
      apply();
    });

    paintSelection();
    main.append(pageTitle('History'), form, toolbar, summary, list, empty, h('div', { class: 'actions' }, more));
    await load(true);
  },
};
