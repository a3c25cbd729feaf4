// Sign in: password step, then (when the account has 2FA) the code step. Tokens go to the session.
import { api, tokens, ApiError } from "../api.js";
import { $, publicShell, showFormErrors, clearFormErrors, busy, notice } from "../ui.js";

publicShell();
const params = new URLSearchParams(location.search);

// Where to go after signing in: the `next` parameter when it is a path on this site, else "/".
// Browsers read "\" as "/" and drop tabs and newlines inside URLs, so "/\evil.example/" or "/\t/evil.example"
// would leave the site: anything with a backslash or a control character is refused, and the rest must
// resolve (with `new URL`) to this very origin. The resolved absolute URL is used, never the raw text.
function safeNext(raw, origin = location.origin) {
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//")) return null;
  if (/[\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(raw)) return null;
  let url;
  try { url = new URL(raw, origin); } catch { return null; }
  if (url.origin !== origin || (url.protocol !== "http:" && url.protocol !== "https:")) return null;
  return url.href;
}

function nextPage() {
  return safeNext(params.get("next")) || "/";
}

function signedIn(pair) {
  tokens.set(pair);
  sessionStorage.removeItem("tf.me");
  location.assign(nextPage());
}

if (params.get("reset")) notice($("#login-info"), "ok", "Your password was changed. Sign in with the new one.");
if (params.get("registered")) notice($("#login-info"), "ok", "Account created. Sign in to continue.");

let mfaToken = null;
const loginForm = $("#login-form");
loginForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearFormErrors(loginForm);
  const data = Object.fromEntries(new FormData(loginForm));
  if (!data.username || !data.password) {
    showFormErrors(loginForm, new ApiError(422, "Enter your e-mail and password.", [
      ...(!data.username ? [{ field: "username", message: "Enter your e-mail." }] : []),
      ...(!data.password ? [{ field: "password", message: "Enter your password." }] : []),
    ]));
    return;
  }
  busy(loginForm, async () => {
    try {
      const res = await api("/auth/login", { method: "POST", form: data, auth: false });
      if (res.mfa_required) {
        mfaToken = res.mfa_token;
        $("#step-password").hidden = true;
        $("#step-mfa").hidden = false;
        $("#code").focus();
      } else {
        signedIn(res);
      }
    } catch (err) {
      if (err.status === 429) {
        const wait = err.headers && err.headers.get("Retry-After");
        err.detail = `Too many attempts. Try again${wait ? ` in ${wait} s` : " later"}.`;
      } else if (err.status === 401) {
        err.detail = "Incorrect e-mail or password.";
      } else if (err.status === 403) {
        err.detail = err.detail === "account disabled" ? "This account is disabled. Contact the administrator." : err.detail;
      }
      showFormErrors(loginForm, err);
    }
  });
});

const mfaForm = $("#mfa-form");
mfaForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const code = String(new FormData(mfaForm).get("code") || "").trim().replace(/\s+/g, "");
  if (!code) {
    showFormErrors(mfaForm, new ApiError(422, "Enter a code.", [{ field: "code", message: "Enter the code from your app." }]));
    return;
  }
  busy(mfaForm, async () => {
    try {
      signedIn(await api("/auth/login/2fa", { method: "POST", json: { mfa_token: mfaToken, code }, auth: false }));
    } catch (err) {
      if (err.status === 401) err.detail = "That code is not valid. Check your authenticator's clock and try again.";
      showFormErrors(mfaForm, err);
    }
  });
});
