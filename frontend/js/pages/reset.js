// reset.html: ask for a reset link; reset.html?token=...: choose the new password.
import { api, ApiError } from "../api.js";
import { $, publicShell, showFormErrors, clearFormErrors, busy, notice } from "../ui.js";

publicShell();
const token = new URLSearchParams(location.search).get("token");
if (token) {
  $("#step-request").hidden = true;
  $("#step-confirm").hidden = false;
}

const request = $("#request-form");
request.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearFormErrors(request);
  const email = String(new FormData(request).get("email") || "").trim();
  if (!email) { showFormErrors(request, new ApiError(422, "Enter your e-mail.", [{ field: "email", message: "Enter your e-mail." }])); return; }
  busy(request, async () => {
    try {
      await api("/auth/password-reset/request", { method: "POST", json: { email }, auth: false });
      notice(request.querySelector(".form-status"), "ok", "If an account exists for that e-mail, a reset link is on its way. It expires soon: use it today.");
    } catch (err) {
      showFormErrors(request, err);
    }
  });
});

const confirm = $("#confirm-form");
confirm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearFormErrors(confirm);
  const { new_password, new_password2 } = Object.fromEntries(new FormData(confirm));
  if (new_password !== new_password2) {
    showFormErrors(confirm, new ApiError(422, "The passwords do not match.", [{ field: "new_password2", message: "The passwords do not match." }]));
    return;
  }
  busy(confirm, async () => {
    try {
      await api("/auth/password-reset/confirm", { method: "POST", json: { token, new_password }, auth: false });
      location.assign("/login.html?reset=1");
    } catch (err) {
      showFormErrors(confirm, err);
    }
  });
});
