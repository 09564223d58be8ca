// The options of the process page, built from what the deployment publishes (GET /v1/capabilities) and the
// libraries (GET /v1/catalog/poses, /v1/catalog/backgrounds):
// - image type: only the modes this deployment can make; the others are named with the reason they are not offered;
// - pose: only for on-model;
// - background: a colour (swatches, a hex field and the browser's colour picker, shown only while a colour is
//   chosen), transparent (ghost only: on-model pictures are opaque) or an image from the library (with previews);
// - marketplace size: what it is for and its size; a background its marketplace does not allow is refused inline;
// - priority: the API's own description of what each does.

import { presetAllows } from './capabilities.js';
import { field, h, plural, select } from './ui.js';

export const SWATCHES = [
  ['#ffffff', 'White'],
  ['#f1f1f1', 'Light grey'],
  ['#d9d9d9', 'Grey'],
  ['#efe6d8', 'Beige'],
  ['#e6eef7', 'Pale blue'],
  ['#1f1f1f', 'Black'],
];
const HEX = /^#?([0-9a-f]{6})$/i;
const WHITE = '#ffffff';

export function normaliseHex(text) {
  const match = HEX.exec(String(text || '').trim());
  return match ? `#${match[1].toLowerCase()}` : null;
}

function backgroundPreview(item) {
  const src = item.thumbnail_url || item.preview_url || `img/backgrounds/${encodeURIComponent(item.id)}.webp`;
  const img = h('img', { class: 'library-thumb', src, alt: '', width: 64, height: 64, decoding: 'async', loading: 'lazy' });
  img.addEventListener('error', () => img.replaceWith(h('span', { class: 'library-thumb library-thumb-none', 'aria-hidden': 'true' })), { once: true });
  return img;
}

function chip(colour) {
  const el = h('span', { class: 'swatch-chip', 'aria-hidden': 'true' });
  el.style.backgroundColor = colour; // through the CSSOM: no inline style attribute
  return el;
}

function radio(name, value, id, label, { checked = false, extra = null, describedBy } = {}) {
  const input = h('input', { type: 'radio', name, value, id, checked, 'aria-describedby': describedBy });
  return h('div', { class: 'choice', 'data-choice': value }, input, h('label', { for: id }, extra, h('span', { class: 'choice-text' }, label)));
}

/**
 * Build the option controls. `capabilities`: {modes, presets, priorities}; `poses`, `backgrounds`: catalog items
 * (may be empty). `onChange()` is called after every change. Returns {element, mode(), cost(), request(),
 * problem(), setPoses(items, default), setBackgrounds(items)}.
 */
export function optionControls({ capabilities, onChange }) {
  const available = capabilities.modes.filter((m) => m.available);
  const unavailable = capabilities.modes.filter((m) => !m.available);
  const modeById = new Map(capabilities.modes.map((m) => [m.id, m]));
  const changed = () => onChange?.();

  // ---- image type and pose
  const mode = select('mode', available.map((m) => [m.id, `${m.name} (${plural(m.cost, 'credit')} a photo)`]), available[0]?.id);
  const modeHints = [];
  if (modeById.has('ghost') && modeById.get('ghost').available) modeHints.push('Ghost mannequin: the garment alone, mannequin and backdrop removed.');
  if (modeById.has('on-model') && modeById.get('on-model').available) modeHints.push('On-model: the garment worn by a generated model.');
  const modeField = field('Image type', mode, modeHints.join(' '));
  const notOffered = unavailable.map((m) => h('p', { class: 'hint mode-unavailable', 'data-unavailable': m.id },
    m.reason || `${m.name} images are not available on this service yet.`));
  if (notOffered.length) modeField.append(...notOffered);
  if (!available.length) {
    mode.disabled = true;
    modeField.append(h('p', { class: 'form-error' }, 'This service cannot make images at the moment. Try again later.'));
  }
  const pose = select('pose', [['', 'Default pose']]);
  const poseField = field('Pose', pose, 'How the model stands.');

  // ---- background
  const kindChoices = h('div', { class: 'choices choices-inline', role: 'radiogroup', 'aria-label': 'Kind of background' },
    radio('background-kind', 'colour', 'bg-kind-colour', 'Colour', { checked: true }),
    radio('background-kind', 'transparent', 'bg-kind-transparent', 'Transparent'),
    radio('background-kind', 'library', 'bg-kind-library', 'Library image'));
  const libraryKind = kindChoices.querySelector('[data-choice="library"]');
  const transparentKind = kindChoices.querySelector('[data-choice="transparent"]');
  libraryKind.hidden = true; // until the library has loaded

  const swatches = h('div', { class: 'swatches', role: 'radiogroup', 'aria-label': 'Colours' },
    SWATCHES.map(([value, name], i) => radio('background-swatch', value, `swatch-${i}`, name, {
      checked: value === WHITE,
      extra: chip(value),
    })));
  const hex = h('input', {
    id: 'background-hex', name: 'background-hex', type: 'text', value: WHITE, inputmode: 'text', autocomplete: 'off',
    spellcheck: 'false', maxlength: '7', pattern: '#?[0-9A-Fa-f]{6}', 'aria-describedby': 'background-hex-hint',
  });
  const picker = h('input', { id: 'background-colour', name: 'background-colour', type: 'color', value: WHITE });
  const colourPanel = h('div', { class: 'colour-panel', id: 'background-colour-panel' },
    swatches,
    h('div', { class: 'colour-custom' },
      h('div', { class: 'field' }, h('label', { for: 'background-hex' }, 'Colour code'), hex,
        h('p', { class: 'hint', id: 'background-hex-hint' }, 'A # and six digits or letters A–F, e.g. #efe6d8.')),
      h('div', { class: 'field' }, h('label', { for: 'background-colour' }, 'Pick a colour'), picker)));
  const libraryPanel = h('div', { class: 'library-panel choices', id: 'background-library', role: 'radiogroup', 'aria-label': 'Library backgrounds', hidden: true });
  const backgroundProblem = h('div', { class: 'inline-problem', id: 'background-problem', 'aria-live': 'polite' });
  const backgroundSet = h('fieldset', { class: 'fieldset', id: 'background-fieldset' },
    h('legend', {}, 'Background'), kindChoices, colourPanel, libraryPanel, backgroundProblem);

  // ---- marketplace size
  const presets = capabilities.presets;
  const presetById = new Map(presets.map((p) => [p.id, p]));
  const preset = select('preset', presets.map((p) => [p.id, `${p.name} (${p.width} × ${p.height} px)`]), presets[0]?.id);
  const presetField = field('Marketplace size', preset, ' ');
  const presetHint = presetField.querySelector('.hint');
  presetHint.id = 'preset-hint';
  const presetRule = h('p', { class: 'hint preset-rule', id: 'preset-rule' });
  presetField.append(presetRule);

  // ---- priority
  const priorities = capabilities.priorities;
  const prioritySet = h('fieldset', { class: 'fieldset', id: 'priority-fieldset' },
    h('legend', {}, 'Priority'),
    h('div', { class: 'choices' }, priorities.map((p, i) => radio('priority', p.id, `priority-${p.id}`, p.name, {
      checked: i === 0,
      describedBy: `priority-${p.id}-hint`,
    }))));
  for (const p of priorities) {
    prioritySet.querySelector(`[data-choice="${CSS.escape(p.id)}"]`)
      .append(h('p', { class: 'hint choice-hint', id: `priority-${p.id}-hint` }, p.description));
  }

  // ---- more options
  const format = select('output-format', [['png', 'PNG'], ['jpeg', 'JPEG'], ['webp', 'WebP'], ['avif', 'AVIF']], 'png');
  const shadow = select('shadow', [['contact', 'Contact shadow'], ['drop', 'Drop shadow'], ['none', 'No shadow']], 'contact');
  const hollow = h('input', { id: 'hollow', name: 'hollow', type: 'checkbox', checked: true });
  const hollowField = h('div', { class: 'field field-check' }, hollow, h('label', { for: 'hollow' }, 'Show the inside of the neck (hollow effect)'));
  const more = h('details', { class: 'more-options' },
    h('summary', {}, 'More options'),
    h('div', { class: 'grid-2' }, field('File format', format), field('Shadow', shadow), hollowField));

  // ---- state
  let backgroundTouched = false;
  const kind = () => kindChoices.querySelector('input:checked')?.value || 'colour';
  const setKind = (value) => {
    const input = kindChoices.querySelector(`input[value="${value}"]`);
    if (input) input.checked = true;
  };
  const colour = () => normaliseHex(hex.value);
  const library = () => libraryPanel.querySelector('input:checked')?.value || null;
  const background = () => {
    if (kind() === 'transparent') return 'transparent';
    if (kind() === 'library') return library() ? `library:${library()}` : null;
    return colour();
  };
  const currentPreset = () => presetById.get(preset.value);

  const setColour = (value, { from } = {}) => {
    const normal = normaliseHex(value);
    if (!normal) return;
    if (from !== 'hex') hex.value = normal;
    if (from !== 'picker') picker.value = normal;
    for (const input of swatches.querySelectorAll('input')) input.checked = input.value === normal;
  };

  const problems = () => {
    const list = [];
    const p = currentPreset();
    if (kind() === 'colour' && !colour()) {
      list.push({ where: 'background', focus: hex, message: 'Enter the colour as # and six digits or letters A–F (for example #efe6d8), or choose one of the colours.' });
    } else if (kind() === 'library' && !library()) {
      list.push({ where: 'background', focus: libraryPanel.querySelector('input') || hex, message: 'Choose a background from the library, or another kind of background.' });
    } else if (p && !presetAllows(p, background())) {
      const white = p.backgrounds?.[0] || WHITE;
      const whiteName = (SWATCHES.find(([v]) => v === white) || [white, white])[1];
      list.push({
        where: 'background',
        focus: swatches.querySelector(`input[value="${white}"]`) || hex,
        message: `${p.name} allows only a ${whiteName.toLowerCase()} background. Choose ${whiteName}, or choose another marketplace size for this background.`,
        fix: { label: `Use ${whiteName.toLowerCase()}`, run: () => { setKind('colour'); setColour(white); sync(); } },
      });
    }
    if (kind() === 'transparent' && format.value === 'jpeg') {
      list.push({ where: 'format', focus: format, message: 'A JPEG cannot be transparent. Choose PNG, WebP or AVIF under More options, or another background.' });
    }
    return list;
  };

  const sync = () => {
    const onModel = mode.value === 'on-model';
    poseField.hidden = !onModel;
    hollowField.hidden = mode.value !== 'ghost';
    transparentKind.hidden = onModel; // on-model pictures are always opaque
    if (onModel && kind() === 'transparent') setKind('colour');
    colourPanel.hidden = kind() !== 'colour';
    libraryPanel.hidden = kind() !== 'library';

    const p = currentPreset();
    presetHint.textContent = p ? p.description : '';
    presetRule.textContent = p?.rule || '';
    presetRule.hidden = !p?.rule;

    const found = problems().filter((x) => x.where === 'background' || x.where === 'format');
    const key = found.map((x) => x.message).join('|');
    if (key !== backgroundProblem.dataset.key) {
      backgroundProblem.dataset.key = key;
      backgroundProblem.replaceChildren(...found.map((x) => h('p', { class: 'form-error', 'data-problem': x.where }, x.message,
        x.fix ? h('button', { type: 'button', class: 'btn btn-secondary btn-small problem-fix', onclick: () => { x.fix.run(); x.focus?.focus(); } }, x.fix.label) : null)));
    }
    backgroundSet.classList.toggle('has-problem', found.length > 0);
    changed();
  };

  mode.addEventListener('change', sync);
  pose.addEventListener('change', sync);
  preset.addEventListener('change', () => {
    const p = currentPreset();
    if (!backgroundTouched && kind() === 'colour' && p?.default_background) setColour(p.default_background);
    sync();
  });
  kindChoices.addEventListener('change', () => {
    backgroundTouched = true;
    if (kind() === 'library' && !library()) libraryPanel.querySelector('input')?.click();
    sync();
  });
  swatches.addEventListener('change', (event) => {
    backgroundTouched = true;
    setColour(event.target.value);
    sync();
  });
  hex.addEventListener('input', () => {
    backgroundTouched = true;
    setColour(hex.value, { from: 'hex' });
    if (!normaliseHex(hex.value)) for (const input of swatches.querySelectorAll('input')) input.checked = false;
    sync();
  });
  hex.addEventListener('change', () => {
    const normal = normaliseHex(hex.value);
    if (normal) hex.value = normal;
  });
  picker.addEventListener('input', () => {
    backgroundTouched = true;
    setColour(picker.value, { from: 'picker' });
    sync();
  });
  libraryPanel.addEventListener('change', () => {
    backgroundTouched = true;
    sync();
  });
  format.addEventListener('change', sync);
  for (const input of prioritySet.querySelectorAll('input')) input.addEventListener('change', changed);

  const element = h('div', { class: 'options stack' },
    h('div', { class: 'grid-2' }, modeField, poseField),
    backgroundSet,
    h('div', { class: 'grid-2' }, presetField),
    prioritySet,
    more);
  sync();

  return {
    element,
    modeSelect: mode,
    mode: () => modeById.get(mode.value) || null,
    cost: () => modeById.get(mode.value)?.cost ?? 0,
    problems,
    request() {
      const options = {
        preset: preset.value,
        background: background(),
        output_format: format.value,
        shadow: shadow.value,
      };
      if (mode.value === 'ghost') options.hollow = hollow.checked;
      if (mode.value === 'on-model' && pose.value) options.pose_id = pose.value;
      const priority = prioritySet.querySelector('input:checked')?.value || 'normal';
      return { mode: mode.value, options, priority };
    },
    setPoses(items, chosen) {
      if (!items?.length) return;
      pose.replaceChildren(...items.map((p) => h('option', { value: p.id }, p.name || p.id)));
      if (chosen) pose.value = chosen;
    },
    setBackgrounds(items) {
      if (!items?.length) return;
      libraryPanel.replaceChildren(...items.map((b, i) => {
        const choice = radio('background-library', b.id, `library-${i}`, b.name || b.id, { extra: backgroundPreview(b), describedBy: `library-${i}-hint` });
        if (b.description) choice.querySelector('label').append(h('span', { class: 'visually-hidden', id: `library-${i}-hint` }, b.description));
        choice.querySelector('label').title = b.description || '';
        return choice;
      }));
      libraryKind.hidden = false;
      sync();
    },
  };
}
