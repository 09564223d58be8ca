// User-pool sign-in over the service's JSON API (no SDK).
//
// Where the tokens live is the person's choice ("Keep me signed in on this device"):
// - not chosen (the default): sessionStorage, this tab and this browser session only. A new tab opened while another
//   tab is signed in asks that tab for the session over a same-origin BroadcastChannel (adoptSessionFromOpenTab),
//   so the tokens still never reach persistent storage and are gone when the last tab closes;
// - chosen: localStorage, shared by every tab and kept across restarts until the person signs out (or the refresh
//   token expires, 30 days in the cloud).
// Signing out revokes the refresh token, clears both storages and signs out every other open tab (a BroadcastChannel
// message, and the storage event for the persisted session).
//
// Every message a person reads is the app's own sentence (messageFor): the service's text is never shown.

import { getConfig } from './config.js';

const SESSION_KEY = 'modamoda.session';
const CHANNEL_NAME = 'modamoda.auth';
const EARLY_REFRESH_MS = 60_000;
const HANDSHAKE_MS = 250;

export const PASSWORD_RULE = 'Use at least 12 characters, with upper- and lower-case letters, a number and a symbol.';

export class AuthError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
  }
}

// ---- storage ------------------------------------------------------------------------------------------------

function read(storage) {
  try {
    const session = JSON.parse(storage.getItem(SESSION_KEY) || 'null');
    return session && session.accessToken ? session : null;
  } catch {
    return null;
  }
}

/** The session of this tab: its own (sessionStorage) first, then the one kept on this device (localStorage). */
export function getSession() {
  return read(sessionStorage) || read(localStorage);
}

export function isSignedIn() {
  return getSession() !== null;
}

/** True when the current session is kept on this device (the person chose "Keep me signed in"). */
export function isRemembered() {
  return Boolean(getSession()?.persist);
}

function saveSession(session) {
  notified = false;
  const json = JSON.stringify(session);
  if (session.persist) {
    localStorage.setItem(SESSION_KEY, json);
    sessionStorage.removeItem(SESSION_KEY);
  } else {
    sessionStorage.setItem(SESSION_KEY, json);
  }
}

function forget() {
  sessionStorage.removeItem(SESSION_KEY);
  localStorage.removeItem(SESSION_KEY);
}

// ---- other tabs ---------------------------------------------------------------------------------------------

const channel = 'BroadcastChannel' in self ? new BroadcastChannel(CHANNEL_NAME) : null;
const signedOutListeners = new Set();
const handshakes = new Map(); // request id → resolve

function broadcast(message) {
  try {
    channel?.postMessage(message);
  } catch {
    // a closed channel: nothing to tell
  }
}

/** Who a session belongs to (the token's subject): a sign-out elsewhere ends only that person's sessions. */
function userOf(session) {
  return (session?.idToken && claims(session.idToken).sub) || session?.email || null;
}

let notified = false; // once per session: the BroadcastChannel message and the storage event may both arrive

function notifySignedOut() {
  if (notified) return;
  notified = true;
  for (const listener of signedOutListeners) listener();
}

/** Another tab signed `user` out (or every session, when no user is named). */
function signedOutElsewhere(user) {
  const mine = getSession();
  if (!mine || (user && userOf(mine) !== user)) return;
  forget();
  notifySignedOut();
}

/** Called when another tab signs out (or its session ended): this tab's session is gone already. */
export function onSignedOutElsewhere(listener) {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

channel?.addEventListener('message', (event) => {
  const message = event.data || {};
  if (message.type === 'signed-out') {
    signedOutElsewhere(message.user);
  } else if (message.type === 'session-request' && message.id) {
    // Only a tab-only session is handed over: a kept one is in localStorage for every tab already.
    const own = read(sessionStorage);
    if (own?.refreshToken) broadcast({ type: 'session-reply', id: message.id, session: own });
  } else if (message.type === 'session-reply' && handshakes.has(message.id)) {
    handshakes.get(message.id)(message.session);
  }
});

window.addEventListener('storage', (event) => {
  // The kept session was removed by another tab (where the BroadcastChannel is missing, this is how the tabs that
  // read it learn of the sign-out). Tabs whose own session is in sessionStorage keep it: the BroadcastChannel
  // message decides for them. sessionStorage never fires across tabs.
  if (event.storageArea !== localStorage || event.key !== SESSION_KEY) return;
  if (event.newValue === null && event.oldValue && !read(sessionStorage)) notifySignedOut();
});

/**
 * A new tab without a session asks the tabs that are open in this browser for theirs (same origin only). Resolves
 * true when one answered within a quarter of a second; the session is then this tab's too (sessionStorage only).
 */
export async function adoptSessionFromOpenTab() {
  if (!channel || isSignedIn()) return isSignedIn();
  const id = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const session = await new Promise((resolve) => {
    handshakes.set(id, resolve);
    broadcast({ type: 'session-request', id });
    setTimeout(() => resolve(null), HANDSHAKE_MS);
  });
  handshakes.delete(id);
  if (!session?.accessToken || !session.refreshToken || isSignedIn()) return isSignedIn();
  saveSession({ ...session, persist: false });
  return true;
}

// ---- messages -----------------------------------------------------------------------------------------------

const TOO_MANY = 'Too many attempts. Wait a few minutes and try again.';
const MESSAGES = {
  UsernameExistsException: 'An account with this e-mail address already exists. Sign in instead.',
  InvalidPasswordException: `This password is not strong enough. ${PASSWORD_RULE}`,
  CodeMismatchException: 'That code is not right. Check the e-mail we sent and try again.',
  ExpiredCodeException: 'That code has expired or was replaced by a newer one. Ask for a new code.',
  TooManyRequestsException: TOO_MANY,
  LimitExceededException: TOO_MANY,
  TooManyFailedAttemptsException: TOO_MANY,
  CodeDeliveryFailureException: 'We could not send the e-mail with the code. Check the address and try again later.',
  UserNotConfirmedException: 'Your e-mail address is not confirmed yet. Enter the code we sent you.',
  PasswordResetRequiredException: 'You need to choose a new password. Use "Forgot your password?" to get a code.',
  UserNotFoundException: 'Incorrect e-mail address or password.',
  InternalErrorException: 'The sign-in service had a problem. Try again in a minute.',
};

/** The app's sentence for a refused request: by error code, and by operation where the same code means more. */
function messageFor(operation, code, serviceText, status) {
  const text = String(serviceText || '');
  if (code === 'NotAuthorizedException') {
    if (/disabled/i.test(text)) return 'This account is disabled. Contact support to use it again.';
    if (operation === 'InitiateAuth') return 'Incorrect e-mail address or password.';
    if (operation === 'ConfirmSignUp' && /confirmed/i.test(text)) return 'This account is confirmed already. Sign in.';
    if (operation === 'RefreshToken') return 'Your session has ended. Please sign in again.';
    return 'That was not allowed. Sign in again and retry.';
  }
  if (code === 'InvalidParameterException') {
    if (/confirmed/i.test(text)) return 'This account is confirmed already. Sign in.';
    if (/password/i.test(text)) return `This password is not strong enough. ${PASSWORD_RULE}`;
    if (/verified|registered/i.test(text) && operation === 'ForgotPassword') {
      return 'This account has no confirmed e-mail address, so its password cannot be reset by e-mail. Contact support.';
    }
    if (/email|username/i.test(text)) return 'Enter a valid e-mail address.';
    return 'Some of what you entered was not accepted. Check it and try again.';
  }
  if (code === 'UserNotFoundException' && operation !== 'InitiateAuth') {
    return 'No account uses this e-mail address. Check it, or create an account.';
  }
  if (MESSAGES[code]) return MESSAGES[code];
  if (status >= 500) return MESSAGES.InternalErrorException;
  return 'That did not work. Try again in a minute.';
}

async function cognito(operation, body, label = operation) {
  const { cognitoEndpoint } = getConfig();
  let response;
  try {
    response = await fetch(cognitoEndpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': `AWSCognitoIdentityProviderService.${operation}`,
      },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new AuthError('network', 'The sign-in service cannot be reached. Check your connection and try again.');
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = String(data.__type || data.code || 'UnknownError').split('#').pop().split(':')[0];
    const error = new AuthError(code, messageFor(label, code, data.message || data.Message, response.status));
    error.serviceMessage = data.message || data.Message || ''; // for the console only
    throw error;
  }
  return data;
}

// ---- tokens -------------------------------------------------------------------------------------------------

function claims(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(payload), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

function storeResult(result, previous = {}) {
  const session = {
    accessToken: result.AccessToken,
    idToken: result.IdToken || previous.idToken || null,
    refreshToken: result.RefreshToken || previous.refreshToken || null,
    expiresAt: Date.now() + (Number(result.ExpiresIn) || 3600) * 1000,
    email: previous.email || null,
    persist: Boolean(previous.persist),
  };
  const id = session.idToken ? claims(session.idToken) : {};
  session.email = id.email || session.email;
  saveSession(session);
  return session;
}

/** Sign in; `remember` keeps the session on this device (localStorage) instead of this tab only. */
export async function signIn(email, password, { remember = false } = {}) {
  const { clientId } = getConfig();
  const data = await cognito('InitiateAuth', {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: email, PASSWORD: password },
  });
  if (!data.AuthenticationResult) {
    throw new AuthError(
      data.ChallengeName || 'challenge',
      'This account needs an extra sign-in step that the web app does not offer yet. Contact support.',
    );
  }
  forget(); // a previous session (another user's, or kept where it is no longer wanted) does not survive
  return storeResult(data.AuthenticationResult, { email, persist: remember });
}

/** Returns {confirmed, destination}: confirmed at once (local mode), or a code was sent to `destination`. */
export async function signUp(email, password) {
  const { clientId } = getConfig();
  const data = await cognito('SignUp', {
    ClientId: clientId,
    Username: email,
    Password: password,
    UserAttributes: [{ Name: 'email', Value: email }],
  });
  return { confirmed: Boolean(data.UserConfirmed), destination: data.CodeDeliveryDetails?.Destination || null };
}

export async function confirmSignUp(email, code) {
  const { clientId } = getConfig();
  await cognito('ConfirmSignUp', { ClientId: clientId, Username: email, ConfirmationCode: code });
}

/** Send a new sign-up confirmation code; resolves with where it went (a masked address) when the service says. */
export async function resendCode(email) {
  const { clientId } = getConfig();
  const data = await cognito('ResendConfirmationCode', { ClientId: clientId, Username: email });
  return { destination: data.CodeDeliveryDetails?.Destination || null };
}

/** Ask for a password-reset code by e-mail. */
export async function forgotPassword(email) {
  const { clientId } = getConfig();
  const data = await cognito('ForgotPassword', { ClientId: clientId, Username: email });
  return { destination: data.CodeDeliveryDetails?.Destination || null };
}

/** Set a new password with the code from the reset e-mail. */
export async function confirmForgotPassword(email, code, password) {
  const { clientId } = getConfig();
  await cognito('ConfirmForgotPassword', {
    ClientId: clientId,
    Username: email,
    ConfirmationCode: code,
    Password: password,
  });
}

let refreshing = null;

/** Trade the refresh token for new access/id tokens (one request at a time). */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const session = getSession();
      if (!session?.refreshToken) throw new AuthError('no_session', 'Please sign in again.');
      const { clientId } = getConfig();
      const data = await cognito('InitiateAuth', {
        AuthFlow: 'REFRESH_TOKEN_AUTH',
        ClientId: clientId,
        AuthParameters: { REFRESH_TOKEN: session.refreshToken },
      }, 'RefreshToken');
      if (!data.AuthenticationResult) throw new AuthError('no_session', 'Please sign in again.');
      if (getSession()?.refreshToken !== session.refreshToken) {
        throw new AuthError('no_session', 'Please sign in again.'); // signed out (or in as someone else) meanwhile
      }
      return storeResult(data.AuthenticationResult, session).accessToken;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * A usable access token, refreshed shortly before it expires. Offline, the old token is returned so that cached
 * responses can still be shown; a refused refresh ends the session (AuthError 'no_session').
 */
export async function accessToken() {
  const session = getSession();
  if (!session) throw new AuthError('no_session', 'Please sign in.');
  if (session.expiresAt - EARLY_REFRESH_MS > Date.now()) return session.accessToken;
  try {
    return await refresh();
  } catch (error) {
    if (error.code === 'network') return session.accessToken;
    clearSession();
    throw new AuthError('no_session', 'Your session has ended. Please sign in again.');
  }
}

/** Forget the tokens in both storages, here and in every other open tab (the session ended or was signed out). */
export function clearSession() {
  const user = userOf(getSession());
  forget();
  broadcast({ type: 'signed-out', user });
}

/** Revoke the refresh token (best effort) and forget the tokens here and in the other tabs. */
export async function signOut() {
  const session = getSession();
  clearSession();
  if (!session?.refreshToken) return;
  try {
    const { clientId } = getConfig();
    await Promise.race([
      cognito('RevokeToken', { ClientId: clientId, Token: session.refreshToken }),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
  } catch {
    // Already signed out locally; an unreachable service must not keep the user signed in.
  }
}
