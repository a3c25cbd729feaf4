// Sign up, then sign in with the same credentials and land on the dashboard (verification e-mail sent).
import { api, tokens, ApiError } from "../api.js";
import { $, publicShell, showFormErrors, clearFormErrors, busy } from "../ui.js";

publicShell();
const form = $("#signup-form");
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearFormErrors(form);
  const { email, password, password2 } = Object.fromEntries(new FormData(form));
  const errors = [];
  if (!email) errors.push({ field: "email", message: "Enter your e-mail." });
  if (!password || password.length < 10) errors.push({ field: "password", message: "At least 10 characters." });
  if (password !== password2) errors.push({ field: "password2", message: "The passwords do not match." });
  if (errors.length) { showFormErrors(form, new ApiError(422, "Please check the highlighted fields.", errors)); return; }
  busy(form, async () => {
    try {
      await api("/auth/register", { method: "POST", json: { email, password }, auth: false });
    } catch (err) {
      if (err.status === 409) err.errors = [{ field: "email", message: "This e-mail is already registered." }];
      showFormErrors(form, err);
      return;
    }
    try {
      const pair = await api("/auth/login", { method: "POST", form: { username: email, password }, auth: false });
      if (pair.access_token) {
        tokens.set(pair);
        location.assign("/?welcome=1");
        return;
      }
    } catch {
      // Fall through: the account exists, the user signs in by hand.
    }
    location.assign("/login.html?registered=1");
  });
});
