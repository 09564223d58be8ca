// Choosing photos on the process page: a drop zone that is also the file picker (a label around the file input,
// so click, Enter and Space open the picker), photos dropped anywhere on the page, images pasted with Ctrl/Cmd+V,
// and the list of chosen photos (name, size, a local preview, Remove) before Process.

import { ACCEPT_ATTRIBUTE, addToSelection, removeFromSelection, selection, subscribeSelection } from './uploads.js';
import { formatBytes, h, plural } from './ui.js';

let pasted = 0;

function hasFiles(event) {
  return Array.from(event.dataTransfer?.types || []).includes('Files');
}

/** Clipboard files get a name that says where they came from (browsers call every one "image.png"). */
function pastedFiles(clipboard) {
  const files = [];
  const fromItems = Array.from(clipboard?.items || []).filter((i) => i.kind === 'file').map((i) => i.getAsFile());
  for (const file of (fromItems.length ? fromItems : Array.from(clipboard?.files || []))) {
    if (!file) continue;
    pasted += 1;
    const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
    const generic = !file.name || /^image\.\w+$/i.test(file.name);
    files.push(generic ? new File([file], `pasted-photo-${pasted}.${ext}`, { type: file.type, lastModified: Date.now() + pasted }) : file);
  }
  return files;
}

function thumb(item) {
  const placeholder = () => h('span', { class: 'chosen-thumb chosen-thumb-none', 'aria-hidden': 'true' }, 'No preview');
  if (!item.preview) return placeholder();
  const img = h('img', { class: 'chosen-thumb', src: item.preview, alt: '', width: 56, height: 56, decoding: 'async', loading: 'lazy' });
  img.addEventListener('error', () => img.replaceWith(placeholder()), { once: true });
  return img;
}

function chosenItem(item) {
  return h('li', { class: 'chosen', 'data-chosen': item.id },
    thumb(item),
    h('span', { class: 'chosen-name' }, item.name),
    h('span', { class: 'chosen-size hint' }, formatBytes(item.size)),
    h('button', {
      type: 'button',
      class: 'btn btn-quiet btn-small chosen-remove',
      'data-remove': item.id,
      'aria-label': `Remove ${item.name}`,
      onclick: (event) => {
        const next = event.currentTarget.closest('li')?.nextElementSibling?.querySelector('button')
          || event.currentTarget.closest('li')?.previousElementSibling?.querySelector('button');
        removeFromSelection(item.id);
        (next || document.getElementById('file-input'))?.focus();
      },
    }, 'Remove'));
}

/**
 * The photo chooser. Returns {element, input, focus()}. Drop and paste listeners live on the document until
 * `signal` aborts (the page is left).
 */
export function photoChooser({ signal }) {
  const input = h('input', {
    id: 'file-input',
    name: 'photos',
    type: 'file',
    accept: ACCEPT_ATTRIBUTE,
    multiple: true,
    class: 'visually-hidden',
    'aria-describedby': 'dropzone-hint',
  });
  const zone = h('label', { class: 'dropzone', id: 'dropzone', 'data-dropzone': '' },
    h('span', { class: 'dropzone-title' }, 'Drop photos here, or choose them'),
    h('span', { class: 'hint', id: 'dropzone-hint' },
      'Several at once is fine. You can also paste a copied image with Ctrl+V (⌘V on a Mac). JPEG, PNG, WebP, AVIF, HEIC or TIFF.'),
    h('span', { class: 'btn btn-secondary dropzone-button', 'aria-hidden': 'true' }, 'Choose photos'),
    input);
  if (window.matchMedia('(pointer: coarse) and (hover: none)').matches) {
    // a phone or tablet: nothing to drag from; the zone is a big button
    zone.querySelector('.dropzone-title').textContent = 'Add photos';
    zone.querySelector('.hint').textContent = 'Choose several at once if you like. JPEG, PNG, WebP, AVIF, HEIC or TIFF.';
  }
  const status = h('div', { class: 'dropzone-status', id: 'dropzone-status', 'aria-live': 'polite' });
  const summary = h('p', { class: 'hint', id: 'file-summary' });
  const list = h('ul', { class: 'chosen-list', id: 'chosen-list', 'aria-label': 'Photos chosen' });

  const say = (lines) => {
    status.replaceChildren(...lines.map((line) => h('p', { class: 'dropzone-skipped' }, line)));
  };
  const add = (files, how) => {
    const { added, skipped } = addToSelection(files);
    const lines = [];
    if (added && how) lines.push(`${plural(added, 'photo')} ${how}.`);
    say([...lines, ...skipped]);
  };

  const render = () => {
    const items = selection();
    const existing = new Map(Array.from(list.children, (li) => [li.dataset.chosen, li]));
    for (const [id, li] of existing) if (!items.some((i) => i.id === id)) li.remove();
    items.forEach((item, index) => {
      const li = existing.get(item.id) || chosenItem(item);
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    const bytes = items.reduce((sum, i) => sum + i.size, 0);
    summary.textContent = items.length ? `${plural(items.length, 'photo')} chosen (${formatBytes(bytes)}).` : 'No photos chosen yet.';
    list.hidden = !items.length;
    if (!items.length) status.replaceChildren(); // sent or removed: "3 photos added" no longer holds
  };

  input.addEventListener('change', () => {
    add(input.files, '');
    input.value = ''; // the same photo can be chosen again after removing it
  });

  let depth = 0;
  const dragging = (on) => zone.classList.toggle('dropzone-active', on);
  const options = { signal };
  document.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    dragging(true);
  }, options);
  document.addEventListener('dragleave', (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) dragging(false);
  }, options);
  document.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault(); // allow the drop anywhere on the page
    event.dataTransfer.dropEffect = 'copy';
  }, options);
  document.addEventListener('drop', (event) => {
    if (!hasFiles(event) && !event.dataTransfer?.files?.length) return;
    event.preventDefault(); // never let the browser open the photo instead of the app
    depth = 0;
    dragging(false);
    add(event.dataTransfer.files, 'added');
  }, options);
  document.addEventListener('paste', (event) => {
    const files = pastedFiles(event.clipboardData);
    if (!files.length) return; // text pasted into a field goes on as usual
    event.preventDefault();
    add(files, 'pasted');
  }, options);

  const unsubscribe = subscribeSelection(render);
  signal.addEventListener('abort', unsubscribe);
  render();

  const element = h('div', { class: 'field photo-chooser' },
    h('span', { class: 'field-label', id: 'photos-label' }, 'Photos'),
    zone, status, summary, list);
  return { element, input, focus: () => input.focus() };
}
