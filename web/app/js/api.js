// The Modamoda HTTP API client: bearer token, one refresh-and-retry on 401, error bodies turned into ApiError.

import { accessToken, refresh } from './auth.js';
import { getConfig } from './config.js';
import { sentence, setApiUnreachable } from './ui.js';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let onUnauthorized = () => {};

/** Called once by the app: what to do when the API refuses the session (sign in again). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

function describeDetails(details) {
  if (!Array.isArray(details)) return '';
  return details
    .map((d) => {
      const where = (d.loc || []).filter((p) => p !== 'body').join('.');
      const what = d.message || d.msg || '';
      return where ? `${where}: ${what}` : what;
    })
    .filter(Boolean)
    .join('; ');
}

function errorFrom(status, body) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (error && typeof error === 'object') {
    const detail = describeDetails(error.details);
    const message = sentence(error.message || 'The request failed') + (detail ? ` (${detail})` : '');
    return new ApiError(status, error.code || 'error', message.endsWith('.') || message.endsWith(')') ? message : `${message}.`, error.details);
  }
  if (status === 401) return new ApiError(401, 'unauthorized', 'Your session has ended. Please sign in again.');
  if (status === 403) return new ApiError(403, 'forbidden', 'You are not allowed to do that.');
  if (status === 429) return new ApiError(429, 'throttled', 'Too many requests. Wait a moment and try again.');
  const message = body && body.message ? sentence(body.message) : `The service answered ${status}. Try again in a moment.`;
  return new ApiError(status, 'http_error', message);
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
    throw new ApiError(401, 'unauthorized', error.message);
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
    );
  }

  if (response.status === 401) {
    const message = 'Your session has ended. Please sign in again.';
    onUnauthorized(message);
    throw new ApiError(401, 'unauthorized', message);
  }
  setApiUnreachable(response.headers.get('X-Modamoda-Offline') === '1');
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw errorFrom(response.status, data);
  return data;
}
