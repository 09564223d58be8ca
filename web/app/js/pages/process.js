// Process photos: choose photos (picker, drop, paste), choose the look, see what it costs, Process; the results
// appear beside the form on a desktop and right below it on a phone (the page scrolls to them).

import { api } from '../api.js';
import { FALLBACK, loadBalance, loadCapabilities } from '../capabilities.js';
import { apiErrorText } from '../errors.js';
import { photoChooser } from '../dropzone.js';
import { optionControls } from '../options.js';
import { resultsSection } from '../results.js';
import { creditsNotYetReserved, selection, startBatch, subscribeSelection, takeFromSelection } from '../uploads.js';
import { busy, h, pageTitle, plural } from '../ui.js';

let catalogs = null; // {poses: {items, default}, backgrounds: {items}}

function catalogItems(data, kind) {
  return (data && (data.items || data[kind])) || [];
}

async function loadCatalogs(signal) {
  if (catalogs) return catalogs;
  const [poses, backgrounds] = await Promise.allSettled([
    api('/v1/catalog/poses', { signal }),
    api('/v1/catalog/backgrounds', { signal }),
  ]);
  const result = {
    poses: poses.status === 'fulfilled' ? { items: catalogItems(poses.value, 'poses'), default: poses.value.default } : null,
    backgrounds: backgrounds.status === 'fulfilled' ? { items: catalogItems(backgrounds.value, 'backgrounds') } : null,
  };
  if (result.poses && result.backgrounds) catalogs = result;
  return result;
}

const credits = (n) => plural(n, 'credit');

export default {
  title: 'Process photos',
  nav: 'process',
  async render(main, { signal }) {
    main.append(
      pageTitle('Process photos'),
      h('p', { class: 'lead' }, 'Add garment photos, choose the look, and press Process. Credits are only used for images that are made.'),
    );
    const loading = h('p', { class: 'hint', id: 'process-loading' }, 'Loading the options…');
    main.append(loading);

    let capabilities;
    let capabilitiesProblem = null;
    try {
      capabilities = await loadCapabilities({ signal, fresh: true });
    } catch (error) {
      if (signal.aborted) return;
      capabilitiesProblem = error?.code === 'offline'
        ? `${apiErrorText(error)} The usual options are shown meanwhile.`
        : 'We could not load this service’s current options and prices, so the usual ones are shown. Reload the page to try again.';
      capabilities = FALLBACK;
    }
    if (signal.aborted) return;
    loading.remove();

    let balance = capabilities.balance;
    const chooser = photoChooser({ signal });
    const cost = h('div', { class: 'cost', id: 'process-cost', 'aria-live': 'polite' });
    const submit = h('button', { id: 'process-submit', type: 'submit', class: 'btn btn-primary' }, 'Process');
    const formError = h('div', { class: 'form-error', id: 'process-error', hidden: true, role: 'alert' });
    let options = null;

    // ---- what the selection costs, and what the account can pay
    const available = () => (balance === null ? null : Math.max(0, balance - creditsNotYetReserved()));
    const canAfford = (needed) => {
      const left = available();
      if (left === null || needed <= left) return null;
      return `Retrying this photo needs ${credits(needed)}; you have ${credits(left)} available.`;
    };
    const plan = () => {
      const count = selection().length;
      const each = options?.cost() ?? 0;
      const total = count * each;
      const left = available();
      const affordable = left === null || !each ? count : Math.min(count, Math.floor(left / each));
      return { count, each, total, left, affordable };
    };
    const sendButton = (n) => h('button', { type: 'button', class: 'btn btn-secondary btn-small', id: 'process-affordable', 'data-send': String(n) },
      n === 1 ? 'Process the first photo only' : `Process the first ${n} only`);
    const buyLink = () => h('a', { href: '#/credits', class: 'btn btn-secondary btn-small', 'data-buy-credits': '' }, 'Buy credits');

    const paintCost = () => {
      const p = plan();
      const mode = options?.mode();
      const lines = [];
      let over = false;
      if (!mode) {
        lines.push(h('p', {}, 'No image type can be made at the moment.'));
      } else if (!p.count) {
        lines.push(h('p', {}, `${mode.name}: ${credits(p.each)} a photo.`,
          p.left === null ? '' : ` You have ${credits(p.left)}.`));
      } else {
        lines.push(h('p', { class: 'cost-total' }, `${plural(p.count, 'photo')} × ${credits(p.each)} = `, h('strong', { 'data-cost': String(p.total) }, credits(p.total)), '.'));
        if (p.left !== null) {
          over = p.total > p.left;
          if (!over) {
            lines.push(h('p', {}, `You have ${credits(p.left)}; `, h('strong', { 'data-balance-after': String(p.left - p.total) }, `${credits(p.left - p.total)} left after these`), '.'));
          } else {
            const rest = p.count - p.affordable;
            const sentence = p.affordable
              ? `These photos need ${credits(p.total)}, but you have ${credits(p.left)}: enough for ${plural(p.affordable, 'photo')}. Buy credits, or process the first ${plural(p.affordable, 'photo')} now and the other ${rest} after buying.`
              : `These photos need ${credits(p.total)}, but you have ${credits(p.left)}. Buy credits to process them: they stay chosen here while you do.`;
            lines.push(h('p', { class: 'cost-over', 'data-over-balance': '' }, sentence));
            lines.push(h('p', { class: 'actions' }, buyLink(), p.affordable ? sendButton(p.affordable) : null));
          }
        }
        if (creditsNotYetReserved() > 0 && p.left !== null) {
          lines.push(h('p', { class: 'hint' }, `${credits(creditsNotYetReserved())} of your balance are kept for the photos still being processed.`));
        }
      }
      cost.replaceChildren(...lines);
      cost.classList.toggle('cost-is-over', over);
      return p;
    };

    const refreshBalance = async () => {
      const fresh = await loadBalance({ signal }).catch(() => null);
      if (signal.aborted || fresh === null) return;
      balance = fresh;
      paintCost();
    };
    // the account settles a job's credits just after the job's status changes: look now, and once more a little later
    let balanceTimers = [];
    const refreshBalanceSoon = () => {
      balanceTimers.forEach(clearTimeout);
      balanceTimers = [setTimeout(refreshBalance, 400), setTimeout(refreshBalance, 3000)];
    };
    signal.addEventListener('abort', () => balanceTimers.forEach(clearTimeout));

    const clearError = () => {
      formError.hidden = true;
      formError.replaceChildren();
    };
    const showError = (message, focus, ...extra) => {
      formError.replaceChildren(h('p', {}, message, ...extra));
      formError.hidden = false;
      focus?.focus();
    };

    options = optionControls({
      capabilities,
      onChange: () => {
        clearError();
        paintCost();
      },
    });

    const results = resultsSection({
      signal,
      canAfford,
      onProgress: (changed) => {
        // a photo set its credits aside or ended: the balance moved
        if (changed === null || ['processing', 'succeeded', 'failed', 'rejected', 'cancelled', 'error'].includes(changed.status)) refreshBalanceSoon();
        else paintCost();
      },
    });

    const send = (count) => busy(submit, async () => {
      clearError();
      const request = options.request();
      const each = options.cost();
      const items = takeFromSelection(count);
      if (!items.length) return;
      const sending = startBatch(items, request, each);
      results.reveal();
      paintCost();
      const batch = await sending;
      const failed = batch.filter((u) => u.status === 'error').length;
      if (failed) {
        showError(failed === batch.length
          ? `None of the ${plural(batch.length, 'photo')} could be sent. Each one says why under Results.`
          : `${failed} of ${batch.length} photos could not be sent. Each one says why under Results.`);
      }
      refreshBalanceSoon();
    });

    const form = h('form', { class: 'card stack process-form', id: 'process-form', novalidate: true },
      capabilitiesProblem ? h('p', { class: 'notice notice-error' }, capabilitiesProblem) : null,
      chooser.element,
      options.element,
      cost,
      formError,
      h('div', { class: 'actions' }, submit));

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearError();
      const p = paintCost();
      if (!options.mode()) return showError('No image type can be made at the moment. Try again later.');
      if (!p.count) return showError('Add at least one photo first: drop it on the page, paste it, or choose it.', chooser.input);
      const problems = options.problems();
      if (problems.length) return showError(problems[0].message, problems[0].focus);
      if (p.affordable < p.count) {
        return showError(p.affordable
          ? `Nothing was sent: these ${plural(p.count, 'photo')} need ${credits(p.total)} and you have ${credits(p.left)}. Buy credits, or process the first ${p.affordable} only.`
          : `Nothing was sent: these ${plural(p.count, 'photo')} need ${credits(p.total)} and you have ${credits(p.left)}. Buy credits first.`,
        cost.querySelector('#process-affordable') || cost.querySelector('[data-buy-credits]'));
      }
      send(p.count);
    });
    cost.addEventListener('click', (event) => {
      const button = event.target.closest('#process-affordable');
      if (!button) return;
      const problems = options.problems();
      if (problems.length) return showError(problems[0].message, problems[0].focus);
      send(Number(button.dataset.send));
    });

    const unsubscribe = subscribeSelection(() => {
      clearError();
      paintCost();
    });
    signal.addEventListener('abort', unsubscribe);

    main.append(h('div', { class: 'process-layout' }, form, results.element));
    paintCost();

    const loaded = await loadCatalogs(signal);
    if (signal.aborted) return;
    if (loaded.poses) options.setPoses(loaded.poses.items, loaded.poses.default);
    if (loaded.backgrounds) options.setBackgrounds(loaded.backgrounds.items);
    if (balance === null) refreshBalance();
  },
};
