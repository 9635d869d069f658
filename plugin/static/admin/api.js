// Patron's JSON API, called with the marketer key kept in this tab's session storage.
//
// The page lives at <root>/admin/ and the API at <root>/v1/, wherever Patron is mounted, so every
// path is resolved against the directory above this module.
const ROOT = new URL("../", import.meta.url);
const KEY = "patron.admin.key";
const WHO = "patron.admin.who";

/** An error answer: `problem` is the application/problem+json body (RFC 9457). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** Per-field validation errors, `[{field, message}]`, the field as a path like `tiers.levels[1].threshold`. */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  get who() {
    const raw = sessionStorage.getItem(WHO);
    return raw ? JSON.parse(raw) : null;
  },
  start(key, who) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(WHO, JSON.stringify(who));
  },
  end() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(WHO);
  },
};

let onUnauthenticated = () => {};

/** What to do when the key stops working (revoked, rotated out): the app signs out. */
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

/**
 * One API call. `path` starts with /v1/; `query` values that are empty are left out; `body` is sent
 * as JSON. Resolves to {data, headers, status}; rejects with an ApiError for any 4xx or 5xx.
 */
export async function api(path, { method = "GET", query = {}, body, headers = {}, key } = {}) {
  const url = new URL(`.${path}`, ROOT);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const sent = { Accept: "application/json", Authorization: `Bearer ${key ?? session.key}`, ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(0, { title: "Patron did not answer", detail: `Patron did not answer: ${error.message}` });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401 && key === undefined) onUnauthenticated();
    throw new ApiError(response.status, data || { title: response.statusText || `HTTP ${response.status}` });
  }
  return { data, headers: response.headers, status: response.status };
}

/** A path segment from a value (a customer id may hold any character). */
export const segment = (value) => encodeURIComponent(value);
