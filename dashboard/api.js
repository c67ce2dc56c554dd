// The REST API (/v1/...) as the console uses it: JSON in, JSON out, errors as ApiError with
// the server's problem+json detail.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
    this.problem = problem;
  }
}

async function request(method, path, body, options = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body instanceof ArrayBuffer || body instanceof Blob) {
    headers['Content-Type'] = options.contentType || 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, { detail: `the broker did not answer (${e.message})` });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!response.ok && response.status !== 207) throw new ApiError(response.status, data);
  if (options.withStatus) return { status: response.status, data };
  return data;
}

/** Percent-encodes one path segment (topic names may hold % and |). */
export const seg = (s) => encodeURIComponent(s);

export const api = {
  get: (path) => request('GET', path),
  post: (path, body, options) => request('POST', path, body, options),
  put: (path, body, options) => request('PUT', path, body, options),
  del: (path, body) => request('DELETE', path, body),
};

/** Builds a query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}
