// History: search and filter jobs, page with a cursor, download and delete. Offline it shows the cached list.

import { api } from '../api.js';
import { jobItem } from '../jobs.js';
import { field, h, isOffline, pageTitle, select, toast } from '../ui.js';

const PAGE_SIZE = 20;
const STATUS_FILTERS = [
  ['', 'Any status'],
  ['succeeded', 'Done'],
  ['queued,validated,processing', 'In progress'],
  ['awaiting_upload', 'Waiting for upload'],
  ['failed', 'Failed'],
  ['rejected', 'Rejected'],
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
    const list = h('ul', { id: 'history-list', class: 'job-list' });
    const empty = h('p', { class: 'empty', hidden: true });
    const more = h('button', { id: 'history-more', type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
    const summary = h('p', { class: 'hint', 'aria-live': 'polite' });

    let cursor = null;
    let sequence = 0;
    let shown = 0;

    const removed = () => {
      shown -= 1;
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
        shown = 0;
      }
      list.append(...page.items.map((job) => jobItem(job, { actions: true, onDeleted: (_job, item) => { item.remove(); removed(); } })));
      shown += page.items.length;
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      more.disabled = false;
      empty.hidden = true;
      if (!shown) showEmpty();
      summary.textContent = shown ? `${shown} shown${cursor ? ', more available' : ''}${isOffline() ? ' (saved copy)' : ''}.` : '';
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

    const form = h('form', { class: 'card filters', role: 'search', 'aria-label': 'Filter jobs' },
      field('Search by file name', search),
      field('Image type', mode),
      field('Status', status),
      field('From', from),
      field('To', to),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Apply')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearTimeout(debounce);
      apply();
    });

    main.append(pageTitle('History'), form, summary, list, empty, h('div', { class: 'actions' }, more));
    await load(true);
  },
};
