// Buy credits (Stripe Checkout, or the local test checkout) and the credit ledger.

import { api } from '../api.js';
import { replaceQuiet } from '../router.js';
import { busy, formatDate, formatMoney, h, pageTitle, plural, sentence, toast } from '../ui.js';

const CHECKOUT_KEY = 'modamoda.checkout';
const WAIT_FOR_CREDITS_MS = 30_000;
const POLL_MS = 2000;

// Wording for ledger entries the service wrote before it described them itself (`entry.description`): customer
// words only — never the internal kind or reason.
const KIND_WORDS = {
  grant: 'Credits added',
  purchase: 'Credits bought',
  refund: 'Refund of a purchase',
  dispute: 'Payment disputed with your bank',
  dispute_reversal: 'Payment dispute settled: credits given back',
  expiry: 'Credits expired',
  adjustment: 'Correction by Modamoda',
};

function photoName(entry) {
  const meta = entry.meta || {};
  return entry.job_filename || meta.filename || meta.job_filename || null;
}

function describe(entry) {
  if (entry.description) return entry.description;
  const meta = entry.meta || {};
  const name = photoName(entry);
  const photo = name ? `“${name}”` : 'a photo';
  if (entry.kind === 'purchase' || meta.reason === 'purchase' || meta.pack_id || meta.pack_name) {
    const pack = meta.pack_name || meta.pack_id;
    return pack ? `Bought the ${sentence(String(pack))} pack` : 'Credits bought';
  }
  if (meta.reason === 'welcome') return 'Welcome credits';
  if (entry.kind === 'reserve' || entry.kind === 'capture') return `Image from ${photo}`;
  if (entry.kind === 'release') return `Credits returned: no image was made from ${photo}`;
  return KIND_WORDS[entry.kind] || 'Credit change';
}

/** Bookkeeping that does not change the balance (a job's hold becoming its charge) is not listed. */
function listed(entry) {
  return Number(entry.amount) !== 0 || entry.kind === 'purchase' || Boolean(entry.receipt_url);
}

function safeReceipt(url) {
  try {
    const parsed = new URL(url, location.href);
    return /^https?:$/.test(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  title: 'Credits',
  nav: 'credits',
  refreshWhenOnline: true,
  async render(main, { params, signal }) {
    const balance = h('span', { id: 'credits-balance' });
    const held = h('p', { class: 'hint' });
    const notice = h('p', { class: 'notice', id: 'checkout-status', hidden: true });
    const packs = h('ul', { class: 'packs', id: 'packs', 'aria-busy': 'true' });
    const ledgerBody = h('tbody');
    const ledger = h('table', { id: 'ledger', class: 'ledger' },
      h('caption', { class: 'visually-hidden' }, 'Credit history, newest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Date'), h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col', class: 'num' }, 'Credits'))),
      ledgerBody);
    const ledgerEmpty = h('p', { class: 'empty', hidden: true }, 'No credit movements yet.');
    const ledgerMore = h('button', { id: 'ledger-more', type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
    let current = null;
    let ledgerCursor = null;

    main.append(
      pageTitle('Credits'),
      notice,
      h('section', { class: 'card', 'aria-labelledby': 'balance-heading' },
        h('h2', { id: 'balance-heading' }, 'Credits left'),
        h('p', { class: 'stat' }, balance),
        held),
      h('section', { 'aria-labelledby': 'packs-heading' },
        h('h2', { id: 'packs-heading' }, 'Buy credits'),
        h('p', { class: 'hint' }, 'Payment is handled by Stripe. Credits are added as soon as the payment is confirmed.'),
        packs),
      h('section', { 'aria-labelledby': 'ledger-heading' },
        h('h2', { id: 'ledger-heading' }, 'Credit history'),
        h('div', { class: 'table-wrap' }, ledger),
        ledgerEmpty,
        h('div', { class: 'actions' }, ledgerMore)),
    );

    const showBalance = (credits) => {
      current = credits.balance;
      balance.textContent = String(credits.balance);
      held.textContent = credits.held ? `${plural(credits.held, 'credit')} reserved for jobs in progress.` : '';
    };

    const loadLedger = async (reset) => {
      try {
        const page = await api('/v1/credits/ledger', { query: { limit: 20, cursor: reset ? undefined : ledgerCursor }, signal });
        if (signal.aborted) return;
        if (reset) ledgerBody.replaceChildren();
        for (const entry of page.items.filter(listed)) {
          const amount = Number(entry.amount);
          const receipt = entry.receipt_url ? safeReceipt(entry.receipt_url) : null;
          ledgerBody.append(h('tr', { 'data-entry': entry.id, 'data-kind': entry.kind },
            h('td', {}, formatDate(entry.created_at)),
            h('td', {},
              h('span', { class: 'ledger-what' }, describe(entry)),
              receipt ? ' ' : null,
              receipt ? h('a', {
                class: 'ledger-receipt',
                href: receipt,
                target: '_blank',
                rel: 'noopener noreferrer',
                'data-receipt': entry.id,
              }, 'Receipt', h('span', { class: 'visually-hidden' }, ' (opens in a new tab)')) : null),
            h('td', { class: `num ${amount < 0 ? 'minus' : 'plus'}` }, amount > 0 ? `+${amount}` : amount < 0 ? `−${Math.abs(amount)}` : '0')));
        }
        ledgerCursor = page.next_cursor || null;
        ledgerMore.hidden = !ledgerCursor;
        ledgerEmpty.hidden = ledgerBody.children.length > 0;
      } catch (error) {
        if (!signal.aborted) toast(error.message, 'error');
      }
    };
    ledgerMore.addEventListener('click', () => busy(ledgerMore, () => loadLedger(false)));

    const buy = async (pack, button) => {
      await busy(button, async () => {
        try {
          const base = `${location.origin}${location.pathname}`;
          const session = await api('/v1/credits/checkout', {
            method: 'POST',
            body: { pack_id: pack.id, success_url: `${base}#/credits?checkout=success`, cancel_url: `${base}#/credits?checkout=cancelled` },
          });
          const target = new URL(session.checkout_url, location.href);
          if (!/^https?:$/.test(target.protocol)) throw new Error('The payment page address is not valid.');
          sessionStorage.setItem(CHECKOUT_KEY, JSON.stringify({ pack: pack.id, credits: pack.credits, balance: current, at: Date.now() }));
          toast('Opening the secure payment page…');
          location.assign(target.href);
        } catch (error) {
          toast(error.message, 'error');
        }
      });
    };

    const [credits, packList] = await Promise.allSettled([
      api('/v1/credits', { signal }),
      api('/v1/credits/packs', { signal }),
      loadLedger(true),
    ]);
    if (signal.aborted) return;

    if (credits.status === 'fulfilled') showBalance(credits.value);
    else {
      balance.textContent = '–';
      held.textContent = credits.reason.message;
    }
    packs.removeAttribute('aria-busy');
    if (packList.status === 'fulfilled') {
      packs.append(...packList.value.items.map((pack) => {
        const price = formatMoney(pack.price_cents, pack.currency);
        const button = h('button', {
          type: 'button',
          class: 'btn btn-primary',
          'data-pack-id': pack.id,
          'data-buy': pack.id,
          'aria-label': `Buy ${pack.name}: ${plural(pack.credits, 'credit')} for ${price}`,
        }, `Buy for ${price}`);
        button.addEventListener('click', () => buy(pack, button));
        return h('li', { class: 'card pack' },
          h('h3', {}, pack.name),
          h('p', { class: 'stat' }, String(pack.credits), h('span', { class: 'unit' }, ' credits')),
          h('p', { class: 'hint' }, `${formatMoney(Math.round(pack.price_cents / Math.max(pack.credits, 1)), pack.currency)} per credit`),
          button);
      }));
    } else {
      packs.append(h('li', { class: 'empty' }, packList.reason.message));
    }

    const outcome = params.get('checkout');
    if (outcome) replaceQuiet('#/credits');
    if (outcome === 'cancelled') {
      sessionStorage.removeItem(CHECKOUT_KEY);
      notice.hidden = false;
      notice.textContent = 'Checkout cancelled. You have not been charged.';
      toast(notice.textContent);
    } else if (outcome === 'success') {
      let saved = null;
      try {
        saved = JSON.parse(sessionStorage.getItem(CHECKOUT_KEY) || 'null');
      } catch {
        saved = null;
      }
      sessionStorage.removeItem(CHECKOUT_KEY);
      const before = saved && Number.isFinite(saved.balance) ? saved.balance : current;
      notice.hidden = false;
      notice.dataset.kind = 'info';
      notice.textContent = 'Thank you! Your payment went through. Adding your credits…';
      toast(notice.textContent, 'success');
      const deadline = Date.now() + WAIT_FOR_CREDITS_MS;
      let arrived = current !== null && before !== null && current !== before;
      while (!arrived && Date.now() < deadline && !signal.aborted) {
        await sleep(POLL_MS);
        if (signal.aborted) return;
        try {
          const latest = await api('/v1/credits', { signal });
          showBalance(latest);
          arrived = before === null ? false : latest.balance !== before;
        } catch {
          // keep trying until the deadline
        }
      }
      if (signal.aborted) return;
      if (arrived) {
        const added = current - before;
        notice.dataset.kind = 'success';
        notice.textContent = added > 0 ? `${plural(added, 'credit')} added. You now have ${current}.` : `Your balance is now ${current}.`;
        loadLedger(true);
      } else {
        notice.textContent = 'Your payment is confirmed. The credits can take a minute to appear: reload this page shortly.';
      }
      // the notice on the page says it; a toast would only repeat it
    }
  },
};
