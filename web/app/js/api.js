// The Modamoda HTTP API client: bearer token, one refresh-and-retry on 401, error bodies turned into ApiError.

import { accessToken, refresh } from './auth.js';
import { getConfig } from './config.js';
import { apiErrorText } from './errors.js';
import { setApiUnreachable } from './ui.js';

export class ApiError extends Error {
  constructor(status, code, message, details, friendly = false) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.friendly = friendly; // the message was written by the app for people (not sent by the service)
  }
}

let onUnauthorized = () => {};

/** Called once by the app: what to do when the API refuses the session (sign in again). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * An ApiError whose message is the app's own sentence for the code (js/errors.js): the text the service sent is
 * kept as `serverMessage` for the console, never shown.
 */
function errorFrom(status, body) {
  const error = body && typeof body === 'object' ? body.error : null;
  let code = error && typeof error === 'object' && error.code ? String(error.code) : null;
  if (!code) code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 429 ? 'throttled' : status >= 500 ? 'internal_error' : 'http_error';
  const serverMessage = error && typeof error === 'object' ? String(error.message || '') : String(body?.message || '');
  const failure = new ApiError(status, code, '', error?.details);
  failure.serverMessage = serverMessage;
  failure.message = apiErrorText(failure);
  return failure;
}

export function apiUrl(path, query) {
  const url = new URL(getConfig().apiUrl + path);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
  }
  return url;
}

/**
 * Call the API. Resolves with the parsed JSON (null for 204); rejects with ApiError. A response the service
 * worker served from its offline cache carries `X-Modamoda-Offline: 1` and raises the offline banner.
 */
export async function api(path, { method = 'GET', body, query, signal } = {}) {
  const url = apiUrl(path, query);
  const send = (token) =>
    fetch(url, {
      method,
      headers: {
        Accept: 'application/json',
        Authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });

  let token;
  try {
    token = await accessToken();
  } catch (error) {
    onUnauthorized(error.message);
    throw new ApiError(401, 'unauthorized', error.message, undefined, true);
  }

  let response;
  try {
    response = await send(token);
    if (response.status === 401) {
      try {
        token = await refresh();
        response = await send(token);
      } catch (error) {
        if (error?.name === 'AbortError') throw error;
        // keep the 401: the session cannot be renewed
      }
    }
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    setApiUnreachable(true);
    throw new ApiError(
      0,
      'offline',
      navigator.onLine
        ? 'The Modamoda service cannot be reached. Check your connection and try again.'
        : 'You are offline. Reconnect and try again.',
      undefined,
      true,
    );
  }

  if (response.status === 401) {
    const message = 'Your session has ended. Please sign in again.';
    onUnauthorized(message);
    throw new ApiError(401, 'unauthorized', message, undefined, true);
  }
  setApiUnreachable(response.headers.get('X-Modamoda-Offline') === '1');
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw errorFrom(response.status, data);
  return data;
}
