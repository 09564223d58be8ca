// Account: name, webhook URL (secret shown once) and API keys (key shown once).

import { api } from '../api.js';
import { busy, copyButton, field, formatDate, h, pageTitle, sentence, toast } from '../ui.js';

const ACCOUNT_KINDS = { individual: 'Individual', organization: 'Business', organisation: 'Business', business: 'Business' };
const INTERNAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export default {
  title: 'Account',
  nav: 'account',
  async render(main, { signal }) {
    const email = h('dd', { id: 'account-email' });
    const tenant = h('dd', { id: 'account-kind' });
    const since = h('dd', {});

    const name = h('input', { id: 'account-name', name: 'name', type: 'text', autocomplete: 'organization', maxlength: '200' });
    const saveName = h('button', { id: 'account-save', type: 'submit', class: 'btn btn-primary' }, 'Save name');
    const nameForm = h('form', { class: 'stack' }, field('Name', name, 'Your shop or business name.'), h('div', { class: 'actions' }, saveName));

    const webhookCurrent = h('p', { id: 'webhook-current', class: 'hint' });
    const webhookUrl = h('input', { id: 'webhook-url', name: 'webhook-url', type: 'url', inputmode: 'url', placeholder: 'https://example.com/hooks/modamoda', required: true });
    const webhookSave = h('button', { id: 'webhook-save', type: 'submit', class: 'btn btn-primary' }, 'Save webhook');
    const webhookDelete = h('button', { id: 'webhook-delete', type: 'button', class: 'btn btn-danger', hidden: true }, 'Remove webhook');
    const webhookSecret = h('code', { id: 'webhook-secret', class: 'secret' });
    const webhookSecretBox = h('div', { class: 'notice once', hidden: true },
      h('p', {}, h('strong', {}, 'Signing secret — copy it now. '), 'It is shown only once and is used to check that deliveries come from Modamoda.'),
      h('p', { class: 'secret-row' }, webhookSecret, copyButton(webhookSecret)));
    const webhookForm = h('form', { class: 'stack' },
      field('Webhook URL', webhookUrl, 'Modamoda calls this address when a job finishes. https only (http is allowed for localhost).'),
      h('div', { class: 'actions' }, webhookSave, webhookDelete));

    const keyName = h('input', { id: 'apikey-name', name: 'apikey-name', type: 'text', maxlength: '64', required: true, placeholder: 'e.g. Shop sync' });
    const keyCreate = h('button', { id: 'apikey-create', type: 'submit', class: 'btn btn-primary' }, 'Create API key');
    const keyValue = h('code', { id: 'apikey-value', class: 'secret' });
    const keyValueBox = h('div', { class: 'notice once', hidden: true },
      h('p', {}, h('strong', {}, 'New API key — copy it now. '), 'It is shown only once. Keep it secret, like a password.'),
      h('p', { class: 'secret-row' }, keyValue, copyButton(keyValue)));
    const keyForm = h('form', { class: 'stack' }, field('Key name', keyName), h('div', { class: 'actions' }, keyCreate));
    const keyList = h('ul', { id: 'apikey-list', class: 'key-list' });
    const keyEmpty = h('p', { class: 'empty', hidden: true }, 'No API keys yet.');

    main.append(
      pageTitle('Account'),
      h('section', { class: 'card', 'aria-labelledby': 'profile-heading' },
        h('h2', { id: 'profile-heading' }, 'Profile'),
        h('dl', { class: 'facts' }, h('dt', {}, 'E-mail'), email, h('dt', {}, 'Account type'), tenant, h('dt', {}, 'Member since'), since),
        nameForm),
      h('section', { class: 'card', 'aria-labelledby': 'webhook-heading' },
        h('h2', { id: 'webhook-heading' }, 'Webhook'),
        webhookCurrent, webhookForm, webhookSecretBox),
      h('section', { class: 'card', 'aria-labelledby': 'keys-heading' },
        h('h2', { id: 'keys-heading' }, 'API keys'),
        h('p', { class: 'hint' }, 'Let your own systems use the Modamoda API. Revoke a key at any time.'),
        keyForm, keyValueBox, keyList, keyEmpty),
    );

    const showWebhook = (webhook) => {
      webhookDelete.hidden = !webhook;
      if (webhook?.url) {
        webhookCurrent.textContent = `Deliveries go to ${webhook.url}${webhook.secret_hint ? ` (signing secret ${webhook.secret_hint})` : ''}.`;
        webhookUrl.value = webhook.url;
      } else {
        webhookCurrent.textContent = 'No webhook is set.';
      }
    };

    const keyRow = (key) => {
      const revoked = Boolean(key.revoked_at);
      const row = h('li', { class: 'key', 'data-key-id': key.id },
        h('div', { class: 'key-body' },
          h('p', { class: 'key-name' }, key.name),
          h('p', { class: 'hint' }, h('code', {}, `${key.prefix}…`), ` · created ${formatDate(key.created_at)}`,
            revoked ? ` · revoked ${formatDate(key.revoked_at)}` : '')));
      if (!revoked) {
        const revoke = h('button', {
          type: 'button', class: 'btn btn-danger btn-small', 'data-revoke': key.id, 'aria-label': `Revoke API key ${key.name}`,
        }, 'Revoke');
        revoke.addEventListener('click', async () => {
          if (!window.confirm(`Revoke the API key “${key.name}”? Programs using it stop working at once.`)) return;
          await busy(revoke, async () => {
            try {
              await api(`/v1/account/api-keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' });
              toast(`API key “${key.name}” revoked.`, 'success');
              await loadKeys();
            } catch (error) {
              toast(error.message, 'error');
            }
          });
        });
        row.append(revoke);
      } else {
        row.classList.add('revoked');
      }
      return row;
    };

    const loadKeys = async () => {
      try {
        const { items } = await api('/v1/account/api-keys', { signal });
        if (signal.aborted) return;
        keyList.replaceChildren(...items.map(keyRow));
        keyEmpty.hidden = items.length > 0;
      } catch (error) {
        if (!signal.aborted) toast(error.message, 'error');
      }
    };

    nameForm.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(saveName, async () => {
        try {
          const account = await api('/v1/account', { method: 'PATCH', body: { name: name.value.trim() } });
          name.value = account.tenant_name || name.value;
          toast('Name saved.', 'success');
        } catch (error) {
          toast(error.message, 'error');
        }
      });
    });

    webhookForm.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(webhookSave, async () => {
        try {
          const saved = await api('/v1/account/webhook', { method: 'PUT', body: { url: webhookUrl.value.trim() } });
          webhookSecret.textContent = saved.secret;
          webhookSecretBox.hidden = false;
          showWebhook({ url: saved.url, secret_hint: saved.secret ? `…${saved.secret.slice(-4)}` : null });
          toast('Webhook saved. Copy the signing secret now: it is shown only once.', 'success');
        } catch (error) {
          toast(error.message, 'error');
        }
      });
    });

    webhookDelete.addEventListener('click', () => {
      if (!window.confirm('Remove the webhook? Modamoda stops calling it.')) return;
      busy(webhookDelete, async () => {
        try {
          await api('/v1/account/webhook', { method: 'DELETE' });
          webhookSecret.textContent = '';
          webhookSecretBox.hidden = true;
          webhookUrl.value = '';
          showWebhook(null);
          toast('Webhook removed.', 'success');
        } catch (error) {
          toast(error.message, 'error');
        }
      });
    });

    keyForm.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(keyCreate, async () => {
        try {
          const created = await api('/v1/account/api-keys', { method: 'POST', body: { name: keyName.value.trim() } });
          keyValue.textContent = created.api_key;
          keyValueBox.hidden = false;
          keyName.value = '';
          toast('API key created. Copy it now: it is shown only once.', 'success');
          await loadKeys();
        } catch (error) {
          toast(error.message, 'error');
        }
      });
    });

    const [account] = await Promise.allSettled([api('/v1/account', { signal }), loadKeys()]);
    if (signal.aborted) return;
    if (account.status === 'fulfilled') {
      const a = account.value;
      // the e-mail the account was opened with; an internal id is never shown in its place
      email.textContent = a.email && a.email.includes('@') ? a.email : 'Not known yet';
      tenant.textContent = ACCOUNT_KINDS[a.tenant_kind] || (a.tenant_kind ? sentence(a.tenant_kind.replace(/_/g, ' ')) : '—');
      since.textContent = formatDate(a.created_at) || '—';
      name.value = a.tenant_name && !INTERNAL_ID.test(a.tenant_name) ? a.tenant_name : '';
      showWebhook(a.webhook);
    } else {
      toast(account.reason.message, 'error');
    }
  },
};
