// The one client of the Tradefleet API: tokens, refresh-token rotation, the error format and the 401 redirect.
//
// Tokens live in sessionStorage (one browser tab's session; gone when the tab closes): the access token is
// sent as `Authorization: Bearer`, the refresh token is traded for a new pair through `POST /auth/refresh`
// (rotating: the old one is dead after use). A 401 is retried once after a refresh; a second 401, or a
// failed refresh, clears the session and sends the browser to the login page (`?next=` the current page).
//
// Every failure is thrown as an `ApiError` {status, detail, errors: [{field, message}]}; a network failure
// has status 0. Nothing here logs to the console: pages show errors inline.

export const API_PREFIX = "/api/v1";
const ACCESS = "tf.access";
const REFRESH = "tf.refresh";

export function apiBase() {
  return String(window.BACKEND_API_BASE_URL || "").replace(/\/+$/, "");
}

export function apiUrl(path) {
  return apiBase() + API_PREFIX + path;
}

export class ApiError extends Error {
  constructor(status, detail, errors = [], headers = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
    this.headers = headers;
  }
}

export const tokens = {
  get access() { return sessionStorage.getItem(ACCESS); },
  get refresh() { return sessionStorage.getItem(REFRESH); },
  set(pair) {
    if (pair.access_token) sessionStorage.setItem(ACCESS, pair.access_token);
    if (pair.refresh_token) sessionStorage.setItem(REFRESH, pair.refresh_token);
  },
  clear() {
    sessionStorage.removeItem(ACCESS);
    sessionStorage.removeItem(REFRESH);
  },
};

function detailText(body, status) {
  const d = body && body.detail;
  if (typeof d === "string" && d) return d;
  if (Array.isArray(d) && d.length) return d.map((x) => x.msg || x.message || String(x)).join("; ");
  if (status === 0) return "Cannot reach the server. Check your connection and try again.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many attempts. Please wait and try again.";
  if (status >= 500) return "The server had a problem. Please try again in a moment.";
  return `Request failed (HTTP ${status}).`;
}

// ---- requests --------------------------------------------------------------------------------------

let refreshing = null;

/** Trade the refresh token for a new pair; true on success. One refresh at a time per page. */
export function refreshTokens() {
  if (!refreshing) {
    refreshing = (async () => {
      const rt = tokens.refresh;
      if (!rt) return false;
      try {
        const res = await fetch(apiUrl("/auth/refresh"), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: rt }),
        });
        if (!res.ok) return false;
        tokens.set(await res.json());
        return true;
      } catch {
        return false;
      }
    })().finally(() => { setTimeout(() => { refreshing = null; }, 0); });
  }
  return refreshing;
}

export function loginUrl() {
  const here = location.pathname + location.search;
  return "/login.html" + (here && !here.startsWith("/login.html") ? "?next=" + encodeURIComponent(here) : "");
}

export function redirectToLogin() {
  tokens.clear();
  sessionStorage.removeItem("tf.me");
  location.assign(loginUrl());
}

/** Longest Retry-After (seconds) worth waiting for once before a GET is retried. */
export const MAX_RETRY_AFTER_S = 2;

/** Milliseconds to wait before retrying `res` (a 503 or 429 whose Retry-After is at most
 * MAX_RETRY_AFTER_S seconds), or null when it is not to be retried. */
export function shortRetryAfterMs(res) {
  if (res.status !== 503 && res.status !== 429) return null;
  const header = res.headers.get("retry-after");
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  const seconds = Number(header.trim());
  return seconds <= MAX_RETRY_AFTER_S ? Math.max(seconds, 0) * 1000 : null;
}

/**
 * Call the API. `path` is relative to /api/v1. Options: `method`, `json` (a body sent as JSON), `form`
 * (an object sent as application/x-www-form-urlencoded), `multipart` (a FormData sent as
 * multipart/form-data: file uploads), `query` (object; empty values dropped), `auth` (default true:
 * send the token, refresh and redirect on 401). A GET answered 503 or 429 with `Retry-After` of at most
 * MAX_RETRY_AFTER_S seconds is retried once after that wait.
 * Returns the parsed JSON (or null for 204). Throws ApiError.
 */
export async function api(path, { method = "GET", json, form, multipart, query, auth = true, retried = false } = {}) {
  let url = apiUrl(path);
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  } else if (multipart !== undefined) {
    body = multipart;  // the browser sets Content-Type with the boundary
  }
  if (auth && tokens.access) headers.Authorization = `Bearer ${tokens.access}`;
  let res;
  try {
    res = await fetch(url, { method, headers, body });
    const wait = method === "GET" ? shortRetryAfterMs(res) : null;
    if (wait !== null) {
      // A busy database (503) or too many requests in progress (429) with a short Retry-After: a GET
      // changes nothing, so wait that long and ask once more before showing an error.
      await new Promise((resolve) => setTimeout(resolve, wait));
      res = await fetch(url, { method, headers, body });
    }
  } catch {
    throw new ApiError(0, detailText(null, 0));
  }
  if (res.status === 401 && auth) {
    if (!retried && (await refreshTokens())) {
      return api(path, { method, json, form, multipart, query, auth, retried: true });
    }
    redirectToLogin();
    throw new ApiError(401, "Your session has ended. Please sign in again.");
  }
  let data = null;
  const type = res.headers.get("content-type") || "";
  if (res.status !== 204) {
    try {
      data = type.includes("json") ? await res.json() : await res.text();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const errors = data && Array.isArray(data.errors) ? data.errors : [];
    throw new ApiError(res.status, detailText(data, res.status), errors, res.headers);
  }
  return data;
}

/** The signed-in user (GET /users/me), cached for the page; redirects to login without a session. */
let mePromise = null;
export function currentUser() {
  if (!mePromise) {
    if (!tokens.access && !tokens.refresh) {
      redirectToLogin();
      mePromise = new Promise(() => {});
    } else {
      mePromise = api("/users/me");
    }
  }
  return mePromise;
}

/** Sign out: revoke the refresh token, then forget the session. */
export async function logout() {
  const rt = tokens.refresh;
  if (rt) {
    try {
      await api("/auth/logout", { method: "POST", json: { refresh_token: rt }, auth: false });
    } catch {
      // Signing out locally is what matters; the token expires anyway.
    }
  }
  tokens.clear();
  location.assign("/login.html");
}
