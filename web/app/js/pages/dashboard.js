// Dashboard: credits left and the five newest jobs (each opens its own page).

import { api } from '../api.js';
import { jobItem } from '../jobs.js';
import { h, pageTitle, plural } from '../ui.js';

export default {
  title: 'Dashboard',
  nav: 'dashboard',
  refreshWhenOnline: true,
  async render(main, { signal }) {
    const signedInAs = h('p', { class: 'lead', id: 'signed-in-as', hidden: true });
    const balance = h('span', { id: 'credits-balance' });
    const held = h('p', { class: 'hint' });
    const recent = h('ul', { id: 'recent-jobs', class: 'job-list', 'aria-busy': 'true' });
    const recentNote = h('p', { class: 'hint', hidden: true });

    main.append(
      pageTitle('Dashboard'),
      signedInAs,
      h('div', { class: 'cards' },
        h('section', { class: 'card', 'aria-labelledby': 'credits-heading' },
          h('h2', { id: 'credits-heading' }, 'Credits left'),
          h('p', { class: 'stat' }, balance),
          held,
          h('a', { href: '#/credits', class: 'btn btn-secondary' }, 'Buy credits')),
        h('section', { class: 'card', 'aria-labelledby': 'new-heading' },
          h('h2', { id: 'new-heading' }, 'New images'),
          h('p', {}, 'Upload garment photos and get ghost-mannequin or on-model product images.'),
          h('a', { href: '#/process', class: 'btn btn-primary' }, 'Process photos'))),
      h('section', { 'aria-labelledby': 'recent-heading' },
        h('h2', { id: 'recent-heading' }, 'Recent jobs'),
        recent,
        recentNote,
        h('p', {}, h('a', { href: '#/history' }, 'See all jobs in History'))),
    );

    const [credits, jobs, account] = await Promise.allSettled([
      api('/v1/credits', { signal }),
      api('/v1/jobs', { query: { limit: 5 }, signal }),
      api('/v1/account', { signal }),
    ]);
    if (signal.aborted) return;

    // the e-mail the account was opened with (the API's, never an internal user id)
    const email = account.status === 'fulfilled' ? account.value.email : null;
    if (email && email.includes('@')) {
      signedInAs.textContent = `Signed in as ${email}.`;
      signedInAs.hidden = false;
    }

    if (credits.status === 'fulfilled') {
      balance.textContent = String(credits.value.balance);
      held.textContent = credits.value.held ? `${plural(credits.value.held, 'credit')} reserved for jobs in progress.` : '';
    } else {
      balance.textContent = '–';
      held.textContent = credits.reason.message;
    }

    recent.removeAttribute('aria-busy');
    if (jobs.status === 'fulfilled') {
      const items = jobs.value.items.slice(0, 5);
      recent.append(...items.map((job) => jobItem(job)));
      if (!items.length) {
        recentNote.hidden = false;
        recentNote.replaceChildren('No jobs yet. ', h('a', { href: '#/process' }, 'Process your first photo'), '.');
      }
    } else {
      recentNote.hidden = false;
      recentNote.textContent = jobs.reason.message;
    }
  },
};
