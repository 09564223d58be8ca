// Sign in, create an account, confirm the e-mail address (with "send a new code"), and reset a forgotten password.
// One page, one visible form at a time; the page heading names it (the forms have no headings of their own).
// `#/signin?mode=signup` opens on the sign-up form (the landing page's "Create an account").

import * as auth from '../auth.js';
import { clearUserCaches } from '../offline.js';
import { go, takeNext } from '../router.js';
import { busy, field, h, pageTitle, toast } from '../ui.js';

/** The form's error line: it stays under the form until the next try, and is announced when it appears. */
function errorLine(id) {
  return h('p', { class: 'form-error', id, role: 'alert', hidden: true });
}

function showError(el, message) {
  el.textContent = message;
  el.hidden = !message;
}

function rememberBox(id) {
  const box = h('input', { id, name: 'remember', type: 'checkbox' });
  return {
    box,
    field: h('div', { class: 'field field-check' }, box, h('label', { for: id }, 'Keep me signed in on this device')),
  };
}

const TITLES = {
  signin: 'Sign in',
  signup: 'Create an account',
  confirm: 'Confirm your e-mail address',
  forgot: 'Reset your password',
  reset: 'Choose a new password',
};

export default {
  title: 'Sign in',
  nav: null,
  render(main, { params } = {}) {
    let pending = null; // {email, password, remember} between sign-up (or an unconfirmed sign-in) and confirmation
    let resetEmail = '';

    // ---- sign in
    const signinEmail = h('input', { id: 'signin-email', name: 'email', type: 'email', autocomplete: 'username', required: true });
    const signinPassword = h('input', { id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const signinRemember = rememberBox('signin-remember');
    const signinSubmit = h('button', { id: 'signin-submit', type: 'submit', class: 'btn btn-primary' }, 'Sign in');
    const signinError = errorLine('signin-error');
    const signinForm = h('form', { class: 'stack', 'aria-describedby': 'signin-error' },
      field('E-mail address', signinEmail), field('Password', signinPassword), signinRemember.field, signinError,
      h('div', { class: 'actions' }, signinSubmit,
        h('button', { type: 'button', id: 'show-forgot', class: 'link-button' }, 'Forgot your password?')));
    const signinSection = h('section', { class: 'card auth-card', id: 'signin-section' },
      signinForm,
      h('p', { class: 'switch' }, 'New to Modamoda? ',
        h('button', { type: 'button', id: 'show-signup', class: 'link-button' }, 'Create an account')));

    // ---- sign up
    const signupEmail = h('input', { id: 'signup-email', name: 'email', type: 'email', autocomplete: 'email', required: true });
    const signupPassword = h('input', { id: 'signup-password', name: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
    const signupRemember = rememberBox('signup-remember');
    const signupSubmit = h('button', { id: 'signup-submit', type: 'submit', class: 'btn btn-primary' }, 'Create account');
    const signupError = errorLine('signup-error');
    const signupForm = h('form', { class: 'stack', 'aria-describedby': 'signup-error' },
      field('E-mail address', signupEmail),
      field('Password', signupPassword, auth.PASSWORD_RULE),
      signupRemember.field, signupError, signupSubmit);
    const signupSection = h('section', { class: 'card auth-card', id: 'signup-section', hidden: true },
      signupForm,
      h('p', { class: 'switch' }, 'Already have an account? ',
        h('button', { type: 'button', id: 'show-signin', class: 'link-button' }, 'Sign in')));

    // ---- confirm the e-mail address
    const confirmCode = h('input', { id: 'confirm-code', name: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
    const confirmSubmit = h('button', { id: 'confirm-submit', type: 'submit', class: 'btn btn-primary' }, 'Confirm');
    const resendButton = h('button', { id: 'resend-code', type: 'button', class: 'btn btn-secondary' }, 'Send a new code');
    const confirmError = errorLine('confirm-error');
    const confirmStatus = h('p', { class: 'form-status', id: 'confirm-status', role: 'status' });
    const confirmText = h('p', { id: 'confirm-text' });
    const confirmForm = h('form', { class: 'stack', 'aria-describedby': 'confirm-text confirm-error' },
      confirmText, field('Confirmation code', confirmCode), confirmError, confirmStatus,
      h('div', { class: 'actions' }, confirmSubmit, resendButton));
    const confirmSection = h('section', { class: 'card auth-card', id: 'confirm-section', hidden: true },
      confirmForm,
      h('p', { class: 'switch' }, h('button', { type: 'button', class: 'link-button', 'data-back': true }, 'Back to sign in')));

    // ---- forgot password: ask for a code
    const forgotEmail = h('input', { id: 'forgot-email', name: 'email', type: 'email', autocomplete: 'username', required: true });
    const forgotSubmit = h('button', { id: 'forgot-submit', type: 'submit', class: 'btn btn-primary' }, 'Send me a code');
    const forgotError = errorLine('forgot-error');
    const forgotForm = h('form', { class: 'stack', 'aria-describedby': 'forgot-text forgot-error' },
      h('p', { id: 'forgot-text' }, 'Enter the e-mail address of your account. We will send you a code to choose a new password.'),
      field('E-mail address', forgotEmail), forgotError, forgotSubmit);
    const forgotSection = h('section', { class: 'card auth-card', id: 'forgot-section', hidden: true },
      forgotForm,
      h('p', { class: 'switch' }, h('button', { type: 'button', class: 'link-button', 'data-back': true }, 'Back to sign in')));

    // ---- forgot password: the code and the new password
    const resetText = h('p', { id: 'reset-text' });
    const resetCode = h('input', { id: 'reset-code', name: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
    const resetPassword = h('input', { id: 'reset-password', name: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
    const resetRemember = rememberBox('reset-remember');
    const resetSubmit = h('button', { id: 'reset-submit', type: 'submit', class: 'btn btn-primary' }, 'Change password and sign in');
    const resetResend = h('button', { id: 'reset-resend', type: 'button', class: 'btn btn-secondary' }, 'Send a new code');
    const resetError = errorLine('reset-error');
    const resetStatus = h('p', { class: 'form-status', id: 'reset-status', role: 'status' });
    const resetForm = h('form', { class: 'stack', 'aria-describedby': 'reset-text reset-error' },
      resetText, field('Code from the e-mail', resetCode), field('New password', resetPassword, auth.PASSWORD_RULE),
      resetRemember.field, resetError, resetStatus, h('div', { class: 'actions' }, resetSubmit, resetResend));
    const resetSection = h('section', { class: 'card auth-card', id: 'reset-section', hidden: true },
      resetForm,
      h('p', { class: 'switch' }, h('button', { type: 'button', class: 'link-button', 'data-back': true }, 'Back to sign in')));

    const sections = { signin: signinSection, signup: signupSection, confirm: confirmSection, forgot: forgotSection, reset: resetSection };
    const title = pageTitle(TITLES.signin);
    const lead = h('p', { class: 'lead' }, 'Turn garment photos into ready-to-sell product images.');

    function show(name, { focus = true } = {}) {
      for (const [key, section] of Object.entries(sections)) section.hidden = key !== name;
      for (const line of [signinError, signupError, confirmError, forgotError, resetError]) showError(line, '');
      title.textContent = TITLES[name];
      lead.hidden = name !== 'signin' && name !== 'signup';
      document.title = `${TITLES[name]} · Modamoda`;
      if (focus) sections[name].querySelector('input')?.focus();
    }

    async function finish(email, password, remember) {
      await auth.signIn(email, password, { remember });
      await clearUserCaches(); // nothing cached for a previous user survives a new sign-in
      toast('You are signed in.', 'success');
      go(takeNext());
    }

    function askForCode(email, password, remember, text) {
      pending = { email, password, remember };
      confirmText.textContent = text;
      confirmStatus.textContent = '';
      confirmCode.value = '';
      show('confirm');
    }

    signinSection.querySelector('#show-signup').addEventListener('click', () => {
      signupEmail.value = signupEmail.value || signinEmail.value;
      signupRemember.box.checked = signinRemember.box.checked;
      show('signup');
    });
    signupSection.querySelector('#show-signin').addEventListener('click', () => {
      signinEmail.value = signinEmail.value || signupEmail.value;
      show('signin');
    });
    signinSection.querySelector('#show-forgot').addEventListener('click', () => {
      forgotEmail.value = forgotEmail.value || signinEmail.value;
      show('forgot');
    });
    for (const back of [confirmSection, forgotSection, resetSection]) {
      back.querySelector('[data-back]').addEventListener('click', () => show('signin'));
    }

    signinForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(signinError, '');
      const email = signinEmail.value.trim();
      const password = signinPassword.value;
      const remember = signinRemember.box.checked;
      busy(signinSubmit, async () => {
        try {
          await finish(email, password, remember);
        } catch (error) {
          if (error.code === 'UserNotConfirmedException') {
            askForCode(email, password, remember,
              `Your e-mail address is not confirmed yet. Enter the code we sent to ${email} when you signed up, or ask for a new one.`);
            return;
          }
          if (error.code === 'PasswordResetRequiredException') {
            forgotEmail.value = email;
            show('forgot');
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
      const remember = signupRemember.box.checked;
      busy(signupSubmit, async () => {
        try {
          const { confirmed, destination } = await auth.signUp(email, password);
          if (confirmed) {
            await finish(email, password, remember);
            return;
          }
          askForCode(email, password, remember, `We sent a confirmation code to ${destination || email}. Enter it below.`);
        } catch (error) {
          showError(signupError, error.message);
        }
      });
    });

    confirmForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(confirmError, '');
      if (!pending) return show('signin');
      const { email, password, remember } = pending;
      busy(confirmSubmit, async () => {
        try {
          await auth.confirmSignUp(email, confirmCode.value.trim());
        } catch (error) {
          if (!/confirmed already/.test(error.message)) {
            showError(confirmError, error.message);
            return;
          }
        }
        try {
          await finish(email, password, remember);
          pending = null;
        } catch (error) {
          showError(confirmError, error.message);
        }
      });
    });

    resendButton.addEventListener('click', () => {
      showError(confirmError, '');
      if (!pending) return show('signin');
      busy(resendButton, async () => {
        try {
          const { destination } = await auth.resendCode(pending.email);
          confirmStatus.textContent = `We sent a new code to ${destination || pending.email}. Codes sent before it no longer work.`;
          confirmCode.value = '';
          confirmCode.focus();
        } catch (error) {
          showError(confirmError, error.message);
        }
      });
    });

    function sendResetCode(button, errorEl) {
      const email = resetEmail;
      return busy(button, async () => {
        try {
          const { destination } = await auth.forgotPassword(email);
          return destination || email;
        } catch (error) {
          showError(errorEl, error.message);
          return null;
        }
      });
    }

    forgotForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      showError(forgotError, '');
      resetEmail = forgotEmail.value.trim();
      const sentTo = await sendResetCode(forgotSubmit, forgotError);
      if (!sentTo) return;
      resetText.textContent = `If ${resetEmail} has an account, we sent a code to ${sentTo}. Enter it and choose a new password.`;
      resetStatus.textContent = '';
      resetCode.value = '';
      resetPassword.value = '';
      resetRemember.box.checked = signinRemember.box.checked;
      show('reset');
    });

    resetResend.addEventListener('click', async () => {
      showError(resetError, '');
      const sentTo = await sendResetCode(resetResend, resetError);
      if (sentTo) {
        resetStatus.textContent = `We sent a new code to ${sentTo}. Codes sent before it no longer work.`;
        resetCode.value = '';
        resetCode.focus();
      }
    });

    resetForm.addEventListener('submit', (event) => {
      event.preventDefault();
      showError(resetError, '');
      const password = resetPassword.value;
      busy(resetSubmit, async () => {
        try {
          await auth.confirmForgotPassword(resetEmail, resetCode.value.trim(), password);
        } catch (error) {
          showError(resetError, error.message);
          return;
        }
        toast('Your password is changed.', 'success');
        try {
          await finish(resetEmail, password, resetRemember.box.checked);
        } catch (error) {
          signinEmail.value = resetEmail;
          show('signin');
          showError(signinError, error.message);
        }
      });
    });

    main.append(
      h('div', { class: 'auth' },
        title,
        lead,
        ...Object.values(sections)),
    );
    if (params?.get('mode') === 'signup') show('signup', { focus: false });
    else if (params?.get('mode') === 'forgot') show('forgot', { focus: false });
  },
};
