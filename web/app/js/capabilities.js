// What this deployment offers (GET /v1/capabilities): the image types it can make now and what each costs, the
// marketplace presets with their size and background rule, the priorities, and the caller's balance. Pages read it
// through loadCapabilities(); the answer is kept for a minute (the balance part is refreshed with /v1/credits).

import { api } from './api.js';

const KEEP_MS = 60_000;

// Used only while the API has no /v1/capabilities (an older deployment): the same table the API publishes
// (functions/common/presets.py, functions/common/pricing.py). On-model is offered there and refused by the API
// if it cannot run; every newer deployment says so itself.
export const FALLBACK = Object.freeze({
  modes: [
    { id: 'ghost', name: 'Ghost mannequin', cost: 1, available: true, reason: null },
    { id: 'on-model', name: 'On-model', cost: 4, available: true, reason: null },
  ],
  presets: [
    { id: 'square', name: 'Square', width: 2000, height: 2000, default_background: '#ffffff', backgrounds: null, rule: null,
      description: 'A square image for most online shops, 2000 × 2000 pixels.' },
    { id: 'amazon', name: 'Amazon', width: 2000, height: 2000, default_background: '#ffffff', backgrounds: ['#ffffff'],
      rule: 'Amazon asks for a pure white background on the main image, so this preset always uses white.',
      description: 'Amazon’s main product image: the garment large on pure white, big enough for shoppers to zoom in, 2000 × 2000 pixels.' },
    { id: 'zalando', name: 'Zalando', width: 1524, height: 2200, default_background: '#f1f1f1', backgrounds: null, rule: null,
      description: 'A portrait image in Zalando’s catalogue proportions on light grey, 1524 × 2200 pixels.' },
    { id: 'shopify', name: 'Shopify', width: 2048, height: 2048, default_background: '#ffffff', backgrounds: null, rule: null,
      description: 'A square image at the size Shopify recommends, 2048 × 2048 pixels.' },
    { id: 'portrait_4_5', name: 'Portrait 4:5', width: 1600, height: 2000, default_background: '#ffffff', backgrounds: null, rule: null,
      description: 'A 4:5 portrait image for social media and shops, 1600 × 2000 pixels.' },
  ],
  priorities: [
    { id: 'normal', name: 'Normal', description: 'Your photos are processed in the order they arrive.' },
    { id: 'low', name: 'Low', description: 'For photos that are not urgent: they are processed in the same order, but may wait longer before they time out (and any credits are returned).' },
  ],
  balance: null,
});

let kept = null; // {at, value}

/** The deployment's capabilities ({modes, presets, priorities, balance}); FALLBACK (balance null) on an old API. */
export async function loadCapabilities({ signal, fresh = false } = {}) {
  if (!fresh && kept && Date.now() - kept.at < KEEP_MS) return kept.value;
  let value;
  try {
    value = await api('/v1/capabilities', { signal });
  } catch (error) {
    if (error?.name === 'AbortError' || (error.status !== 404 && error.status !== 405)) throw error;
    value = FALLBACK;
  }
  value = {
    modes: Array.isArray(value.modes) && value.modes.length ? value.modes : FALLBACK.modes,
    presets: Array.isArray(value.presets) && value.presets.length ? value.presets : FALLBACK.presets,
    priorities: Array.isArray(value.priorities) && value.priorities.length ? value.priorities : FALLBACK.priorities,
    balance: Number.isFinite(value.balance) ? value.balance : null,
  };
  kept = { at: Date.now(), value };
  return value;
}

/** Forget the kept answer (sign-out, a purchase). */
export function forgetCapabilities() {
  kept = null;
}

/** The spendable balance now (GET /v1/credits), or null when it cannot be read. */
export async function loadBalance({ signal } = {}) {
  try {
    const credits = await api('/v1/credits', { signal });
    return Number.isFinite(credits?.balance) ? credits.balance : null;
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    return null;
  }
}

/** Is `background` ("#rrggbb", "transparent", "library:<id>") one the preset's marketplace allows? */
export function presetAllows(preset, background) {
  if (!preset || !Array.isArray(preset.backgrounds)) return true;
  const chosen = String(background || preset.default_background || '').toLowerCase();
  return preset.backgrounds.map((b) => String(b).toLowerCase()).includes(chosen);
}
