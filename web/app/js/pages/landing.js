// The first screen for a signed-out visitor (#/): what Modamoda does, before/after examples, how it works and the
// prices of the credit packs (GET /v1/public/packs, no sign-in). The examples are made from the project's sample
// photos by the studio engine (web/make_examples.py) and shipped with the app.

import { getConfig } from '../config.js';
import { formatMoney, h, pageTitle, plural } from '../ui.js';

const EXAMPLES = [
  {
    id: 'tshirt_navy',
    name: 'Navy T-shirt',
    look: 'Ghost mannequin on white, with a soft contact shadow',
    before: { width: 480, height: 600, alt: 'Sample photo: a navy T-shirt on a grey backdrop.' },
    after: { width: 480, height: 600, alt: 'Result: the navy T-shirt cut out and centred on white, with a soft shadow.' },
  },
  {
    id: 'hoodie_burgundy',
    name: 'Burgundy hoodie',
    look: 'Ghost mannequin on white, with a drop shadow',
    before: { width: 480, height: 600, alt: 'Sample photo: a burgundy hoodie on a grey backdrop.' },
    after: { width: 480, height: 600, alt: 'Result: the burgundy hoodie cut out and centred on white, with a drop shadow.' },
  },
  {
    id: 'dress_emerald',
    name: 'Emerald dress',
    look: 'Ghost mannequin on a warm off-white colour',
    before: { width: 480, height: 600, alt: 'Sample photo: an emerald dress on a grey backdrop.' },
    after: { width: 480, height: 600, alt: 'Result: the emerald dress cut out and centred on a warm off-white, with a soft shadow.' },
  },
];

const MODE_NAMES = { ghost: 'ghost-mannequin image', 'on-model': 'on-model image' };

function exampleImage(example, which) {
  const { width, height, alt } = example[which];
  return h('figure', { class: `example-side example-${which}` },
    h('img', {
      src: `examples/${example.id}-${which}.webp`,
      width, height, alt,
      'data-example': which,
    }),
    h('figcaption', {}, which === 'before' ? 'Before' : 'After'));
}

function examples() {
  return h('section', { class: 'landing-section', 'aria-labelledby': 'examples-heading' },
    h('h2', { id: 'examples-heading' }, 'Before and after'),
    h('p', { class: 'hint', id: 'examples-note' },
      'These examples were made by Modamoda from sample photos (drawings of garments), exactly as the service makes them, with no retouching.'),
    h('ul', { class: 'examples', 'aria-describedby': 'examples-note' },
      EXAMPLES.map((example) => h('li', { class: 'card example', 'data-example-id': example.id },
        h('h3', {}, example.name),
        h('div', { class: 'example-pair' }, exampleImage(example, 'before'), exampleImage(example, 'after')),
        h('p', { class: 'hint example-look' }, example.look)))));
}

function howItWorks() {
  return h('section', { class: 'landing-section', 'aria-labelledby': 'how-heading' },
    h('h2', { id: 'how-heading' }, 'How it works'),
    h('ol', { class: 'steps' },
      h('li', { class: 'card step' }, h('h3', {}, 'Upload'),
        h('p', {}, 'Add photos of your garments on a mannequin, on a hanger or laid flat: one at a time or many at once.')),
      h('li', { class: 'card step' }, h('h3', {}, 'Pick the look'),
        h('p', {}, 'Choose the background, the size your shop or marketplace asks for, and the file format.')),
      h('li', { class: 'card step' }, h('h3', {}, 'Download'),
        h('p', {}, 'Your product images are ready in moments. Download them, or find them later in your history.'))),
    h('p', { class: 'landing-note' }, 'You pay per image with prepaid credits. When a photo cannot be made into a good product image, we say why and nothing is charged.'));
}

function perImage(pack, credits) {
  return formatMoney(Math.round((pack.price_cents * credits) / pack.credits), pack.currency);
}

function priceList(data) {
  const costs = Object.entries(data?.costs || {}).filter(([, credits]) => Number(credits) > 0);
  const packs = (data?.items || []).filter((pack) => pack.credits > 0);
  if (!packs.length) return h('p', { class: 'empty' }, 'No credit packs are on sale at the moment.');
  return [
    costs.length ? h('p', { id: 'image-costs' }, costs.map(([mode, credits], i) => [
      i ? ' ' : '',
      `One ${MODE_NAMES[mode] || `${mode} image`} costs ${plural(Number(credits), 'credit')}.`,
    ])) : null,
    h('ul', { class: 'packs landing-packs', id: 'landing-packs' },
      packs.map((pack) => h('li', { class: 'card pack', 'data-pack': pack.id },
        h('h3', {}, pack.name),
        h('p', { class: 'stat' }, formatMoney(pack.price_cents, pack.currency)),
        h('p', {}, plural(pack.credits, 'credit')),
        costs.length ? h('ul', { class: 'pack-costs' },
          costs.map(([mode, credits]) => h('li', {}, `${perImage(pack, Number(credits))} per ${MODE_NAMES[mode] || `${mode} image`}`)))
          : null))),
  ];
}

async function loadPrices(holder, signal) {
  try {
    const response = await fetch(`${getConfig().apiUrl}/v1/public/packs`, {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
    if (!response.ok) throw new Error(`packs answered ${response.status}`);
    const data = await response.json();
    holder.replaceChildren(...[priceList(data)].flat().filter(Boolean));
  } catch (error) {
    if (signal?.aborted) return;
    console.warn('prices unavailable', error);
    holder.replaceChildren(h('p', { class: 'notice' },
      navigator.onLine
        ? 'The prices could not be loaded just now. Reload the page to try again.'
        : 'You are offline. Reconnect to see the prices.'));
  }
}

export default {
  title: 'Product images from garment photos',
  nav: null,
  async render(main, { signal } = {}) {
    const prices = h('div', { id: 'prices', 'aria-live': 'polite' }, h('p', { class: 'hint' }, 'Loading the prices…'));
    main.append(
      h('div', { class: 'landing' },
        h('section', { class: 'hero', 'aria-labelledby': 'landing-title' },
          Object.assign(pageTitle('Product images from your garment photos'), { id: 'landing-title' }),
          h('p', { class: 'lead' },
            'Modamoda turns a photo of a garment into a clean product image for your shop: the mannequin and the backdrop are removed, and the garment is centred on white or a colour of your choice, at the size your marketplace asks for. You upload, pick the look and download; each image is paid for with credits.'),
          h('div', { class: 'actions' },
            h('a', { class: 'btn btn-primary', href: '#/signin?mode=signup', id: 'landing-signup' }, 'Create an account'),
            h('a', { class: 'btn btn-secondary', href: '#/signin', id: 'landing-signin' }, 'Sign in'))),
        examples(),
        howItWorks(),
        h('section', { class: 'landing-section', 'aria-labelledby': 'prices-heading' },
          h('h2', { id: 'prices-heading' }, 'Prices'),
          prices),
        h('p', { class: 'landing-end actions' },
          h('a', { class: 'btn btn-primary', href: '#/signin?mode=signup' }, 'Create an account'),
          h('a', { class: 'btn btn-secondary', href: '#/signin' }, 'Sign in'))),
    );
    await loadPrices(prices, signal);
  },
};
