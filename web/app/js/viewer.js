// The image viewer: a modal dialog that shows a result large, with zoom (buttons, + and - keys, the mouse wheel,
// pinch, double-click) and panning when zoomed (drag, or the arrow keys on the picture), and — when the original
// photo is given — a before/after divider (drag it, or use the slider below the picture with the keyboard).
//
//   openViewer({ name, before, after, onClose, opener })  →  { close, dialog }
//
// `after` is the result's image URL, `before` the original photo's (optional), `opener` the control to give focus
// back to (optional: by default whatever had focus). Focus stays in the dialog while it is
// open, Esc closes it, and focus goes back to what had it before.

import { h } from './ui.js';

const MIN_ZOOM = 1;
const MAX_ZOOM = 8;
const STEP = 1.5;

let openCount = 0;

export function openViewer({ name = 'Image', before = null, after, onClose, opener: given = null } = {}) {
  // where focus goes back to: the control that opened the viewer (a tap on a phone does not focus it, so callers
  // may name it), else whatever had focus
  const active = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
  const opener = given || active;
  const titleId = `viewer-title-${(openCount += 1)}`;
  const compare = Boolean(before);

  // ---- the picture: the result, with the original above it clipped at the divider ----------------------------
  const afterImg = h('img', { class: 'viewer-img', src: after, alt: compare ? `Result: ${name}` : name, draggable: 'false', decoding: 'async' });
  const afterLayer = h('div', { class: 'viewer-layer', 'data-layer': 'after' }, afterImg);
  let beforeClip = null;
  let beforeLayer = null;
  let divider = null;
  if (compare) {
    const beforeImg = h('img', { class: 'viewer-img', src: before, alt: `Original photo: ${name}`, draggable: 'false', decoding: 'async' });
    beforeLayer = h('div', { class: 'viewer-layer', 'data-layer': 'before' }, beforeImg);
    beforeClip = h('div', { class: 'viewer-clip' }, beforeLayer);
    divider = h('div', { class: 'viewer-divider', 'aria-hidden': 'true' }, h('span', { class: 'viewer-grip' }));
  }
  const stage = h('div', {
    class: `viewer-stage${compare ? ' viewer-compare' : ''}`,
    tabindex: '0',
    role: 'group',
    'aria-roledescription': 'zoomable image',
    'aria-label': compare
      ? `${name}: original and result. Use + and − to zoom and the arrow keys to move when zoomed in.`
      : `${name}. Use + and − to zoom and the arrow keys to move when zoomed in.`,
  },
  afterLayer,
  beforeClip,
  compare ? h('span', { class: 'viewer-tag viewer-tag-before', 'aria-hidden': 'true' }, 'Before') : null,
  compare ? h('span', { class: 'viewer-tag viewer-tag-after', 'aria-hidden': 'true' }, 'After') : null,
  divider);

  // ---- controls ------------------------------------------------------------------------------------------------
  const zoomOut = h('button', { type: 'button', class: 'btn btn-secondary btn-small viewer-zoom-out', 'aria-label': 'Zoom out' }, '−');
  const zoomLevel = h('output', { class: 'viewer-zoom-level', 'aria-live': 'polite' }, '100%');
  const zoomIn = h('button', { type: 'button', class: 'btn btn-secondary btn-small viewer-zoom-in', 'aria-label': 'Zoom in' }, '+');
  const fit = h('button', { type: 'button', class: 'btn btn-quiet btn-small viewer-fit' }, 'Fit');
  const closeButton = h('button', { type: 'button', class: 'btn btn-secondary btn-small viewer-close' }, 'Close');
  const slider = compare
    ? h('input', { type: 'range', class: 'viewer-slider', id: `${titleId}-slider`, min: '0', max: '100', step: '1', value: '50' })
    : null;
  const sliderField = compare
    ? h('div', { class: 'viewer-slider-field' },
      h('label', { for: slider.id }, 'Before / after'),
      h('span', { class: 'hint', 'aria-hidden': 'true' }, 'Before'),
      slider,
      h('span', { class: 'hint', 'aria-hidden': 'true' }, 'After'))
    : null;

  // the stage takes the result's proportions, as large as the space allows; the original is fitted inside it
  const frame = h('div', { class: 'viewer-frame' }, stage);
  const dialog = h('dialog', { class: 'viewer', 'aria-labelledby': titleId },
    h('div', { class: 'viewer-head' },
      h('h2', { id: titleId, class: 'viewer-title' }, name),
      closeButton),
    frame,
    h('div', { class: 'viewer-tools' },
      h('div', { class: 'viewer-zoom', role: 'group', 'aria-label': 'Zoom' }, zoomOut, zoomLevel, zoomIn, fit),
      sliderField));

  // ---- state: zoom, pan, divider -------------------------------------------------------------------------------
  let zoom = 1;
  let x = 0;
  let y = 0;
  let split = 50;

  const size = () => stage.getBoundingClientRect();
  function clampPan() {
    const { width, height } = size();
    const maxX = ((zoom - 1) * width) / 2;
    const maxY = ((zoom - 1) * height) / 2;
    x = Math.max(-maxX, Math.min(maxX, x));
    y = Math.max(-maxY, Math.min(maxY, y));
  }
  function fitStage() {
    const ratio = afterImg.naturalWidth && afterImg.naturalHeight ? afterImg.naturalWidth / afterImg.naturalHeight : 1;
    const { width, height } = frame.getBoundingClientRect();
    if (!width || !height) return;
    const w = Math.min(width, height * ratio);
    stage.style.width = `${Math.floor(w)}px`;
    stage.style.height = `${Math.floor(w / ratio)}px`;
  }
  function paint() {
    clampPan();
    const transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    afterLayer.style.transform = transform;
    if (beforeLayer) beforeLayer.style.transform = transform;
    zoomLevel.textContent = `${Math.round(zoom * 100)}%`;
    zoomOut.disabled = zoom <= MIN_ZOOM;
    zoomIn.disabled = zoom >= MAX_ZOOM;
    fit.disabled = zoom === 1;
    stage.classList.toggle('is-zoomed', zoom > 1);
    stage.dataset.zoom = String(Math.round(zoom * 100));
  }
  function paintSplit() {
    if (!compare) return;
    beforeClip.style.clipPath = `inset(0 ${100 - split}% 0 0)`;
    divider.style.left = `${split}%`;
    slider.value = String(Math.round(split));
    slider.setAttribute('aria-valuetext', `${Math.round(split)}% original photo`);
    stage.dataset.split = String(Math.round(split));
  }
  /** Zoom to `next`, keeping the point (px, py) — relative to the stage's centre — where it is. */
  function zoomTo(next, px = 0, py = 0) {
    const target = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, next));
    const ratio = target / zoom;
    x = px - (px - x) * ratio;
    y = py - (py - y) * ratio;
    zoom = target;
    paint();
  }
  function fromCentre(event) {
    const r = size();
    return [event.clientX - r.left - r.width / 2, event.clientY - r.top - r.height / 2];
  }
  function setSplitAt(clientX) {
    const r = size();
    split = Math.max(0, Math.min(100, ((clientX - r.left) / r.width) * 100));
    paintSplit();
  }

  zoomIn.addEventListener('click', () => zoomTo(zoom * STEP));
  zoomOut.addEventListener('click', () => zoomTo(zoom / STEP));
  fit.addEventListener('click', () => zoomTo(1));
  slider?.addEventListener('input', () => {
    split = Number(slider.value);
    paintSplit();
  });

  stage.addEventListener('wheel', (event) => {
    event.preventDefault();
    const [px, py] = fromCentre(event);
    zoomTo(zoom * Math.exp(-event.deltaY * 0.0025), px, py);
  }, { passive: false });
  stage.addEventListener('dblclick', (event) => {
    const [px, py] = fromCentre(event);
    zoomTo(zoom > 1 ? 1 : 2.5, px, py);
  });
  stage.addEventListener('keydown', (event) => {
    const move = 40;
    const keys = {
      ArrowLeft: () => { x += move; },
      ArrowRight: () => { x -= move; },
      ArrowUp: () => { y += move; },
      ArrowDown: () => { y -= move; },
    };
    if (keys[event.key] && zoom > 1) {
      event.preventDefault();
      keys[event.key]();
      paint();
    } else if (keys[event.key] && compare && (event.key === 'ArrowLeft' || event.key === 'ArrowRight')) {
      event.preventDefault(); // not zoomed: the arrows move the divider, as on the slider
      split = Math.max(0, Math.min(100, split + (event.key === 'ArrowLeft' ? -5 : 5)));
      paintSplit();
    }
  });

  // Pointers: two fingers pinch; one drags the divider (on its handle, or anywhere when not zoomed) or pans.
  const pointers = new Map();
  let drag = null; // {kind: 'split'|'pan'|'pinch', ...}
  stage.addEventListener('pointerdown', (event) => {
    if (event.button !== 0 && event.pointerType === 'mouse') return;
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    stage.setPointerCapture(event.pointerId);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      drag = { kind: 'pinch', distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, zoom };
    } else if (compare && (event.target === divider || divider.contains(event.target) || zoom === 1)) {
      drag = { kind: 'split' };
      setSplitAt(event.clientX);
    } else if (zoom > 1) {
      drag = { kind: 'pan', startX: event.clientX, startY: event.clientY, x, y };
      stage.classList.add('is-panning');
    }
  });
  stage.addEventListener('pointermove', (event) => {
    if (!pointers.has(event.pointerId) || !drag) return;
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (drag.kind === 'pinch' && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const r = size();
      const mid = [(a[0] + b[0]) / 2 - r.left - r.width / 2, (a[1] + b[1]) / 2 - r.top - r.height / 2];
      zoomTo((drag.zoom * Math.hypot(a[0] - b[0], a[1] - b[1])) / drag.distance, mid[0], mid[1]);
    } else if (drag.kind === 'split') {
      setSplitAt(event.clientX);
    } else if (drag.kind === 'pan') {
      x = drag.x + event.clientX - drag.startX;
      y = drag.y + event.clientY - drag.startY;
      paint();
    }
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size === 0) {
      drag = null;
      stage.classList.remove('is-panning');
    } else if (drag?.kind === 'pinch') {
      drag = null; // one finger left after a pinch: wait for the next touch
    }
  };
  stage.addEventListener('pointerup', release);
  stage.addEventListener('pointercancel', release);

  dialog.addEventListener('keydown', (event) => {
    const onSlider = event.target instanceof HTMLInputElement; // the slider keeps its own keys
    if (!onSlider && (event.key === '+' || event.key === '=')) {
      event.preventDefault();
      zoomTo(zoom * STEP);
    } else if (!onSlider && (event.key === '-' || event.key === '_')) {
      event.preventDefault();
      zoomTo(zoom / STEP);
    } else if (!onSlider && event.key === '0') {
      event.preventDefault();
      zoomTo(1);
    } else if (event.key === 'Tab') {
      // keep Tab inside the dialog (the browser would otherwise move on to its own toolbar)
      const focusable = [...dialog.querySelectorAll('button, input, [tabindex="0"]')].filter((el) => !el.disabled && el.getClientRects().length);
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    }
  });

  // ---- open and close ------------------------------------------------------------------------------------------
  let closed = false;
  const onResize = () => {
    fitStage();
    paint();
  };
  const onRoute = () => close();
  function close() {
    if (closed) return;
    closed = true;
    window.removeEventListener('resize', onResize);
    window.removeEventListener('hashchange', onRoute);
    if (dialog.open) dialog.close();
    dialog.remove();
    document.documentElement.classList.remove('viewer-open');
    // the page may have redrawn the opener meanwhile: then its successor with the same id
    const back = opener?.isConnected ? opener : opener?.id ? document.getElementById(opener.id) : null;
    back?.focus();
    onClose?.();
  }
  closeButton.addEventListener('click', close);
  dialog.addEventListener('close', close);
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault(); // Esc: close through one path
    close();
  });
  window.addEventListener('resize', onResize);
  window.addEventListener('hashchange', onRoute);

  document.body.append(dialog);
  document.documentElement.classList.add('viewer-open');
  dialog.showModal();
  afterImg.addEventListener('load', onResize);
  fitStage();
  paint();
  paintSplit();
  closeButton.focus();
  return { close, dialog };
}
