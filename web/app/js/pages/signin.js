// Sign in, sign up and (when Cognito sends a code) confirm the e-mail address.

import * as auth from '../auth.js';
import { clearUserCaches } from '../offline.js';
import { go, takeNext } from '../router.js';
import { busy, field, h, pageTitle, toast } from '../ui.js';

function errorLine(id) {
  return h('p', { class: 'form-error', id, hidden: true });
}

function showError(el, message) {
  el.textContent = message;
  el.hidden = !message;
  if (message) toast(message, 'error');
}

export default {
  title: 'Sign in',
  nav: null,
  render(main) {
    let pending = null; // {email, password} between sign-up and confirmation

    const signinEmail = h('input', { id: 'signin-email', name: 'email', type: 'email', autocomplete: 'username', required: true });
    const signinPassword = h('input', { id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const signinSubmit = h('button', { id: 'signin-submit', type: 'submit', class: 'btn btn-primary' }, 'Sign in');
    const signinError = errorLine('signin-error');
    const signinForm = h('form', { class: 'stack', 'aria-describedby': 'signin-error' },
      field('E-mail address', signinEmail), field('Password', signinPassword), signinError, signinSubmit);

    const signupEmail = h('input', { id: 'signup-email', name: 'email', type: 'email', autocomplete: 'email', required: true });
    const signupPassword = h('input', { id: 'signup-password', name: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
    const signupSubmit = h('button', { id: 'signup-submit', type: 'submit', class: 'btn btn-primary' }, 'Create account');
    const signupError = errorLine('signup-error');
    const signupForm = h('form', { class: 'stack', 'aria-describedby': 'signup-error' },
      field('E-mail address', signupEmail),
      field('Password', signupPassword, 'At least 12 characters, with upper- and lower-case letters, a number and a symbol.'),
      signupError, signupSubmit);

    const confirmCode = h('input', { id: 'confirm-code', name: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
    const confirmSubmit = h('button', { id: 'confirm-submit', type: 'submit', class: 'btn btn-primary' }, 'Confirm');
    const confirmError = errorLine('confirm-error');
    const confirmText = h('p', {});
    const confirmForm = h('form', { class: 'stack' }, confirmText, field('Confirmation code', confirmCode), confirmError, confirmSubmit);

    const title = pageTitle('Sign in');
    const signinSection = h('section', { class: 'card auth-card', 'aria-label': 'Sign in' },
      signinForm,
      h('p', { class: 'switch' }, 'New to Modamoda? ',
        h('button', { type: 'button', id: 'show-signup', class: 'link-button' }, 'Create an account')));
    const signupSection = h('section', { class: 'card auth-card', 'aria-labelledby': 'signup-heading', hidden: true },
      h('h2', { id: 'signup-heading' }, 'Create an account'),
      signupForm,
      h('p', { class: 'switch' }, 'Already have an account? ',
        h('button', { type: 'button', id: 'show-signin', class: 'link-button' }, 'Sign in')));
    const confirmSection = h('section', { class: 'card auth-card', 'aria-labelledby': 'confirm-heading', hidden: true },
      h('h2', { id: 'confirm-heading' }, 'Confirm your e-mail address'), confirmForm);

    function show(section) {
      for (const s of [signinSection, signupSection, confirmSection]) s.hidden = s !== section;
      title.textContent = section === signinSection ? 'Sign in' : section === signupSection ? 'Create an account' : 'Confirm your e-mail';
      document.title = `${title.textContent} · Modamoda`;
      section.querySelector('input')?.focus();
    }

    async function finish(email, password) {
      await auth.signIn(email, password);
      await clearUserCaches(); // nothing cached for a previous user survives a new sign-in
      toast('You are signed in.', 'success');
      go(takeNext());
    }

    signinSection.querySelector('#show-signup').addEventListener('click', () => {
      signupEmail.value = signupEmail.value || signinEmail.value;
      show(signupSection);
    });
    signupSection.querySelector('#show-signin').addEventListener('click', () => {
      signinEmail.value = signinEmail.value || signupEmail.value;
      show(signinSection);
    });

    signinForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(signinError, '');
      const email = signinEmail.value.trim();
      busy(signinSubmit, async () => {
        try {
          await finish(email, signinPassword.value);
        } catch (error) {
          if (error.code === 'UserNotConfirmedException') {
            pending = { email, password: signinPassword.value };
            confirmText.textContent = `Enter the code we sent to ${email} when you signed up.`;
            show(confirmSection);
            return;
          }
          showError(signinError, error.message);
        }
      });
    });

    signupForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(signupError, '');
      const email = signupEmail.value.trim();
      const password = signupPassword.value;
      busy(signupSubmit, async () => {
        try {
          const { confirmed, destination } = await auth.signUp(email, password);
          if (confirmed) {
            await finish(email, password);
            return;
          }
          pending = { email, password };
          confirmText.textContent = `We sent a confirmation code to ${destination || email}. Enter it below.`;
          show(confirmSection);
          toast('Check your e-mail for the confirmation code.');
        } catch (error) {
          showError(signupError, error.message);
        }
      });
    });

    confirmForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(confirmError, '');
      busy(confirmSubmit, async () => {
        try {
          await auth.confirmSignUp(pending.email, confirmCode.value.trim());
          await finish(pending.email, pending.password);
          pending = null;
        } catch (error) {
          showError(confirmError, error.message);
        }
      });
    });

    main.append(
      h('div', { class: 'auth' },
        title,
        h('p', { class: 'lead' }, 'Turn garment photos into ready-to-sell product images.'),
        signinSection, signupSection, confirmSection),
    );
  },
};
