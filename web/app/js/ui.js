// Small DOM and formatting helpers shared by every page. Everything user- or API-supplied goes in as text.

/** Build an element: h('a', {href: '#/', class: 'btn', onclick: fn, dataset: {x: '1'}}, 'text', child, ...). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (key === 'class') el.className = v;
    else if (key === 'text') el.textContent = v;
    else if (key === 'dataset') Object.assign(el.dataset, v);
    else if (key === 'value') value = v;
    else if (key === 'checked' || key === 'selected') el[key] = Boolean(v);
    else if (key.startsWith('on') && typeof v === 'function') el.addEventListener(key.slice(2), v);
    else el.setAttribute(key, v === true ? '' : String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** A labelled form field: <div class="field"><label for=id>label</label> control <p hint></p></div>. */
export function field(label, control, hint) {
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

/** <select id> with [value, label] pairs (or {group, options}). */
export function select(id, options, selected) {
  const el = h('select', { id, name: id });
  for (const option of options) {
    if (option.group) {
      el.append(h('optgroup', { label: option.group }, option.options.map(([v, l]) => h('option', { value: v }, l))));
    } else {
      el.append(h('option', { value: option[0] }, option[1]));
    }
  }
  if (selected !== undefined) el.value = selected;
  return el;
}

let toastTimer = 0;

/** Announce a message in the polite live region #toast (kind: info | success | error). */
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  if (!el) return;
  clearTimeout(toastTimer);
  el.dataset.kind = kind;
  el.textContent = message;
  toastTimer = setTimeout(() => {
    el.textContent = '';
  }, kind === 'error' ? 12000 : 7000);
}

export function clearToast() {
  const el = document.getElementById('toast');
  if (el) el.textContent = '';
}

/**
 * A sentence for any thrown value: the app's own errors (ApiError, AuthError, and errors it marks `friendly`) carry
 * sentences written for people; anything else (a programming error's text) is never shown.
 */
export function messageOf(error, fallback = 'Something went wrong on this page. Reload it and try again.') {
  if (error && (error.name === 'ApiError' || error.name === 'AuthError' || error.friendly) && error.message) return error.message;
  return fallback;
}

/** Upper-case the first letter ("the request is not valid" → "The request is not valid"). */
export function sentence(text) {
  const s = String(text || '').trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

export function formatMoney(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: String(currency || 'EUR').toUpperCase() })
      .format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

export const STATUS_LABELS = {
  uploading: 'Uploading',
  preparing: 'Preparing',
  error: 'Error',
  awaiting_upload: 'Waiting for upload',
  queued: 'Queued',
  validated: 'Checked',
  processing: 'Processing',
  succeeded: 'Done',
  failed: 'Failed',
  rejected: 'Rejected',
  cancelled: 'Cancelled',
};
export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'rejected', 'cancelled']);
export const MODE_LABELS = { ghost: 'Ghost mannequin', 'on-model': 'On-model' };

/** The status badge: text for people, the raw status in data-status for scripts and styles. */
export function statusBadge(status) {
  return h('span', { class: 'badge', 'data-status': status }, STATUS_LABELS[status] || status);
}

// ---- online / offline ---------------------------------------------------------------------------------------

let apiUnreachable = false;

/** Called by the API client: true when a response came from the offline cache or the API could not be reached. */
export function setApiUnreachable(value) {
  if (apiUnreachable === value) return;
  apiUnreachable = value;
  updateOfflineBanner();
}

export function isOffline() {
  return !navigator.onLine || apiUnreachable;
}

export function updateOfflineBanner() {
  const banner = document.getElementById('offline-banner');
  if (banner) banner.hidden = !isOffline();
}

/** A copy-to-clipboard button for the text of `target`. */
export function copyButton(target, label = 'Copy') {
  return h('button', {
    type: 'button',
    class: 'btn btn-quiet',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(target.textContent);
        toast('Copied to the clipboard.', 'success');
      } catch {
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        toast('Press Ctrl+C (or ⌘C) to copy the selected text.');
      }
    },
  }, label);
}

/** Page heading that receives focus after navigation. */
export function pageTitle(text) {
  return h('h1', { tabindex: '-1', class: 'page-title' }, text);
}

/** Disable a button while an async action runs. */
export async function busy(button, fn) {
  const wasDisabled = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = wasDisabled;
    button.removeAttribute('aria-busy');
  }
}
