// App shell: configuration, service worker, session chrome and the hash router.

import { setUnauthorizedHandler } from './api.js';
import * as auth from './auth.js';
import { loadConfig } from './config.js';
import { clearUserCaches, registerServiceWorker } from './offline.js';
import { NEXT_KEY, go, parseHash } from './router.js';
import { h, messageOf, pageTitle, toast, updateOfflineBanner } from './ui.js';
import { cancelUploads } from './uploads.js';
import account from './pages/account.js';
import credits from './pages/credits.js';
import dashboard from './pages/dashboard.js';
import historyPage from './pages/history.js';
import jobPage from './pages/job.js';
import landing from './pages/landing.js';
import processPage from './pages/process.js';
import signin from './pages/signin.js';

const ROUTES = {
  '/signin': signin,
  '/': dashboard,
  '/process': processPage,
  '/history': historyPage,
  '/credits': credits,
  '/account': account,
};

const notFound = {
  title: 'Page not found',
  render(main) {
    main.append(pageTitle('Page not found'), h('p', {}, h('a', { href: '#/' }, 'Go to the dashboard')));
  },
};

let controller = null;
let currentPage = null;
let firstRender = true;

function updateChrome(page, signedIn) {
  document.getElementById('site-nav').hidden = !signedIn;
  document.getElementById('session').hidden = !signedIn;
  document.getElementById('session-email').textContent = signedIn ? auth.getSession()?.email || '' : '';
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === page.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function render() {
  if (location.hash && !location.hash.startsWith('#/')) return; // an in-page anchor such as the skip link
  const { path, params } = parseHash();
  const jobRoute = /^\/jobs\/([^/]+)$/.exec(path); // #/jobs/<id>: one job's page
  let page = ROUTES[path] || (jobRoute ? jobPage : notFound);
  const signedIn = auth.isSignedIn();
  if (!signedIn && page === dashboard) {
    page = landing; // #/ signed out: the landing page (what it does, examples, prices)
  } else if (!signedIn && page !== signin) {
    sessionStorage.setItem(NEXT_KEY, location.hash);
    location.replace('#/signin');
    return;
  }
  if (signedIn && page === signin) {
    location.replace('#/');
    return;
  }

  controller?.abort();
  controller = new AbortController();
  currentPage = page;
  updateChrome(page, signedIn);
  document.title = `${page.title} · Modamoda`;

  const main = document.getElementById('main');
  main.replaceChildren();
  main.setAttribute('aria-busy', 'true');
  const signal = controller.signal;
  try {
    const pending = page.render(main, { params, signal, id: jobRoute ? decodeURIComponent(jobRoute[1]) : undefined });
    if (!firstRender) main.querySelector('h1')?.focus();
    firstRender = false;
    await pending;
  } catch (error) {
    if (error?.name !== 'AbortError' && !signal.aborted) {
      console.warn('page failed', error);
      main.append(h('p', { class: 'notice notice-error' }, messageOf(error, 'This page could not be shown. Reload it and try again.')));
    }
  } finally {
    if (!signal.aborted) main.removeAttribute('aria-busy');
  }
}

async function signOut() {
  cancelUploads();
  const revoking = auth.signOut(); // forgets the tokens at once; revokes the refresh token in the background
  go('#/signin');
  await Promise.all([clearUserCaches(), revoking]);
  toast('You are signed out.', 'success');
}

function sessionEnded(message) {
  if (!auth.getSession() && parseHash().path === '/signin') return;
  auth.clearSession();
  cancelUploads();
  clearUserCaches();
  const here = location.hash;
  if (here && here.startsWith('#/') && !here.startsWith('#/signin')) sessionStorage.setItem(NEXT_KEY, here);
  toast(message || 'Your session has ended. Please sign in again.', 'error');
  go('#/signin');
}

function wireShell() {
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const main = document.getElementById('main');
    main.focus();
    main.scrollIntoView();
  });
  document.getElementById('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', render);
  window.addEventListener('offline', updateOfflineBanner);
  window.addEventListener('online', () => {
    updateOfflineBanner();
    if (currentPage?.refreshWhenOnline) render();
  });
  setUnauthorizedHandler(sessionEnded);
  auth.onSignedOutElsewhere(() => {
    // another tab signed out (this tab's tokens are gone already) or its session ended
    cancelUploads();
    toast('You were signed out in another tab.', 'success');
    go('#/signin');
  });
}

async function start() {
  wireShell();
  updateOfflineBanner();
  registerServiceWorker();
  try {
    await loadConfig();
  } catch (error) {
    console.warn('configuration unavailable', error);
    const main = document.getElementById('main');
    main.replaceChildren(
      pageTitle('Modamoda cannot start'),
      h('p', {}, 'The app configuration could not be loaded. Check your connection and reload the page.'),
    );
    main.removeAttribute('aria-busy');
    return;
  }
  await auth.adoptSessionFromOpenTab(); // a new tab of a signed-in browser session: ask an open tab
  await render();
}

start();
