// Runtime configuration: /config.json, written by CDK in the cloud and served by the local stack. A copy is kept in
// sessionStorage (it holds no secrets) so that a reload without a network still starts.

const COPY_KEY = 'modamoda.config';
let config = null;

function validated(data) {
  for (const key of ['apiUrl', 'clientId', 'cognitoEndpoint']) {
    if (!data || !data[key]) throw new Error(`config.json has no ${key}`);
  }
  return Object.freeze({ ...data, apiUrl: String(data.apiUrl).replace(/\/+$/, '') });
}

export async function loadConfig() {
  try {
    const response = await fetch(new URL('config.json', document.baseURI), { cache: 'no-store', credentials: 'omit' });
    if (!response.ok) throw new Error(`config.json answered ${response.status}`);
    const data = await response.json();
    config = validated(data);
    sessionStorage.setItem(COPY_KEY, JSON.stringify(data));
  } catch (error) {
    const copy = sessionStorage.getItem(COPY_KEY);
    if (!copy) throw error;
    config = validated(JSON.parse(copy));
  }
  return config;
}

export function getConfig() {
  if (!config) throw new Error('configuration not loaded');
  return config;
}
