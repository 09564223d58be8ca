// Cognito user-pool sign-in over its JSON API (no SDK). Tokens live in sessionStorage only: this tab, this session.

import { getConfig } from './config.js';

const SESSION_KEY = 'modamoda.session';
const EARLY_REFRESH_MS = 60_000;

export class AuthError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
  }
}

export function getSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    return session && session.accessToken ? session : null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

export function isSignedIn() {
  return getSession() !== null;
}

const FRIENDLY = {
  NotAuthorizedException: 'Incorrect e-mail address or password.',
  UserNotFoundException: 'Incorrect e-mail address or password.',
  UsernameExistsException: 'An account with this e-mail address already exists. Sign in instead.',
  CodeMismatchException: 'That confirmation code is not right. Check the e-mail and try again.',
  ExpiredCodeException: 'That confirmation code has expired.',
  TooManyRequestsException: 'Too many attempts. Wait a minute and try again.',
  LimitExceededException: 'Too many attempts. Wait a minute and try again.',
};

async function cognito(operation, body) {
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
    const fromService = data.message || data.Message;
    // Keep Cognito's own wording for password rules and the like; use ours where its wording leaks details.
    const message = (code === 'NotAuthorizedException' && fromService && /disabled|expired|revoked/i.test(fromService))
      ? fromService
      : FRIENDLY[code] || fromService || `Sign-in failed (${response.status}).`;
    throw new AuthError(code, message);
  }
  return data;
}

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
  };
  const id = session.idToken ? claims(session.idToken) : {};
  session.email = id.email || session.email;
  saveSession(session);
  return session;
}

export async function signIn(email, password) {
  const { clientId } = getConfig();
  const data = await cognito('InitiateAuth', {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: clientId,
    AuthParameters: { USERNAME: email, PASSWORD: password },
  });
  if (!data.AuthenticationResult) {
    throw new AuthError(
      data.ChallengeName || 'challenge',
      `This account needs an extra sign-in step (${data.ChallengeName || 'challenge'}) that the web app does not offer yet.`,
    );
  }
  return storeResult(data.AuthenticationResult, { email });
}

/** Returns true when the account is confirmed already (local mode), false when a code was sent. */
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
      });
      if (!data.AuthenticationResult) throw new AuthError('no_session', 'Please sign in again.');
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

/** Revoke the refresh token (best effort) and forget the tokens. */
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
