// The one way the page talks to the server: the public API, with the user's bearer token.

const TOKEN_KEY = "flowhistory.token";
let onUnauthorized = () => {};

export const auth = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    localStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
  },
  onUnauthorized(fn) {
    onUnauthorized = fn;
  },
};

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
  // FastAPI's 422 list form names the field in `loc`; analytics' own 422 is a string.
  // [{path: ["policy", "max_age_days"], msg}, ...]; empty for a string detail.
  fieldErrors() {
    return Array.isArray(this.detail) ? this.detail.map((d) => ({ path: fieldPath(d), msg: d.msg })) : [];
  }
}

// Where a validation message points: its `loc` without the request part it came from.
function fieldPath(item) {
  return (item.loc || []).filter((p) => p !== "body" && p !== "query").map(String);
}

function detailText(detail, status) {
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const field = fieldPath(d).join(".");
        return field ? `${field}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  if (typeof detail === "string") return detail;
  return detail ? JSON.stringify(detail) : `HTTP ${status}`;
}

export async function api(method, path, body, { raw = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = auth.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `The server could not be reached (${err.message})`);
  }
  if (raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const detail = data && typeof data === "object" ? data.detail : text;
    const err = new ApiError(res.status, detailText(detail, res.status), detail);
    if (res.status === 401) {
      auth.clear();
      onUnauthorized(err.message);
    }
    throw err;
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

export const enc = encodeURIComponent;

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
