// verify.html?token=...: confirm the e-mail address with the token from the verification mail.
import { api } from "../api.js";
import { $, publicShell, notice } from "../ui.js";

publicShell();
const out = $("#verify-result");
const token = new URLSearchParams(location.search).get("token");
if (!token) {
  notice(out, "error", "This link has no token. Open the link from your verification e-mail, or sign in and ask for a new one on the Account page.");
} else {
  api("/auth/verify-email", { method: "POST", json: { token }, auth: false })
    .then((user) => notice(out, "ok", `Thank you: ${user.email} is verified.`))
    .catch((err) => notice(out, "error",
      `${err.detail} The link may have expired: sign in and ask for a new one on the Account page.`));
}
