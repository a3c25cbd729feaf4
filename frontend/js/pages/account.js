// Account settings: profile, display name, e-mail verification, password change, 2FA enrolment (QR code,
// recovery codes).
import { api, ApiError } from "../api.js";
import { $, el, clear, appShell, start, notice, badge, field, showFormErrors, clearFormErrors, busy } from "../ui.js";
import { timeEl } from "../time.js";

let me = null;

function profile() {
  const dl = clear($("#profile"));
  const kv = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
  kv("E-mail", me.email);
  kv("Display name", me.display_name || el("span", { class: "muted" }, `${me.email.split("@")[0]} (from your e-mail)`));
  kv("Role", me.role);
  kv("E-mail verified", me.is_verified ? badge("ok", "verified") : badge("warn", "not verified"));
  kv("Two-factor", me.totp_enabled ? badge("ok", "on") : badge("muted", "off"));
  kv("Member since", timeEl(me.created_at));
  const box = clear($("#verify-box"));
  if (!me.is_verified) {
    const resend = el("button", { type: "button", class: "btn small" }, "Resend the verification e-mail");
    const status = el("div", { role: "status" });
    resend.addEventListener("click", async () => {
      try { await api("/auth/resend-verification", { method: "POST" }); notice(status, "ok", `Sent to ${me.email}.`); }
      catch (err) { notice(status, "error", err.detail); }
    });
    box.append(el("div", { class: "form-actions" }, resend), status);
  }
}

function nameForm() {
  const form = $("#name-form");
  const input = $("#display_name");
  // Disabled in the page until the profile is here, so that nothing typed before is overwritten.
  input.value = me.display_name || "";
  input.disabled = false;
  form.querySelector("button[type=submit]").disabled = false;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const value = input.value.trim();
    busy(form, async () => {
      try {
        me = await api("/users/me", { method: "PATCH", json: { display_name: value || null } });
        input.value = me.display_name || "";
        profile();
        notice(form.querySelector(".form-status"), "ok", me.display_name ? `Your strategies now show “${me.display_name}” as their author.` : "Your strategies show the part of your e-mail before the @ as their author.");
      } catch (err) { showFormErrors(form, err); }
    });
  });
}

function passwordForm() {
  const form = $("#pw-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const { current_password, new_password, new_password2 } = Object.fromEntries(new FormData(form));
    if (new_password !== new_password2) {
      showFormErrors(form, new ApiError(422, "The new passwords do not match.", [{ field: "new_password2", message: "The passwords do not match." }]));
      return;
    }
    busy(form, async () => {
      try {
        await api("/users/me/password", { method: "POST", json: { current_password, new_password } });
        form.reset();
        notice(form.querySelector(".form-status"), "ok", "Password changed.");
      } catch (err) { showFormErrors(form, err); }
    });
  });
}

function recoveryCodes(codes) {
  return el("div", {}, el("p", {}, el("strong", {}, "Two-factor authentication is on."), " Save these recovery codes somewhere safe: each one signs you in once if you lose your phone. They are not shown again."),
    el("ol", { class: "codes", "aria-label": "Recovery codes" }, ...codes.map((c) => el("li", {}, c))));
}

async function tfa() {
  const root = clear($("#tfa"));
  if (me.totp_enabled) {
    const form = el("form", { novalidate: true, "aria-label": "Turn off two-factor authentication" },
      el("p", {}, "Two-factor authentication is on. To turn it off, confirm with your password and a current code."),
      el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
      el("div", { class: "form-grid" },
        field("Password", el("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
        field("Authentication code", el("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true }))),
      el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn danger" }, "Turn off 2FA")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const d = Object.fromEntries(new FormData(form));
      busy(form, async () => {
        try { await api("/users/me/2fa/disable", { method: "POST", json: d }); me = await api("/users/me"); profile(); await tfa(); }
        catch (err) { showFormErrors(form, err); }
      });
    });
    root.append(form);
    return;
  }
  // Setting up (and turning on) 2FA asks for the current password: a stolen session alone cannot enrol
  // someone else's authenticator.
  const setupForm = el("form", { novalidate: true, "aria-label": "Set up two-factor authentication" },
    el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
    field("Current password", el("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn primary" }, "Set up two-factor authentication")));
  root.append(el("p", {}, "Protect your account and your exchange keys with a code from an authenticator app (Aegis, 1Password, Google Authenticator…)."), setupForm);
  setupForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearFormErrors(setupForm);
    const password = String(new FormData(setupForm).get("password") || "");
    if (!password) {
      showFormErrors(setupForm, new ApiError(422, "Enter your current password.", [{ field: "password", message: "Enter your current password." }]));
      return;
    }
    busy(setupForm, async () => {
      let s;
      try { s = await api("/users/me/2fa/setup", { method: "POST", json: { password } }); }
      catch (err) { showFormErrors(setupForm, err); return; }
      showSetup(root, s, password);
    });
  });
}

function showSetup(root, s, password) {
  const img = el("img", { class: "qr", alt: "QR code to scan with your authenticator app", src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(s.qr_svg) });
  const form = el("form", { novalidate: true, "aria-label": "Confirm two-factor authentication" },
    el("div", { class: "form-status", tabindex: "-1", role: "alert" }),
    field("Code from the app", el("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, maxlength: 10 })),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn primary" }, "Turn on 2FA")));
  clear(root).append(el("div", { class: "grid halves" },
    el("div", {}, el("p", {}, "1. Scan this QR code with your authenticator app."), img,
      el("p", { class: "hint" }, "Cannot scan? Enter this key by hand: ", el("code", { class: "mono" }, s.secret))),
    el("div", {}, el("p", {}, "2. Enter the 6-digit code it shows."), form)));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const code = String(new FormData(form).get("code") || "").replace(/\s+/g, "");
    busy(form, async () => {
      try {
        const res = await api("/users/me/2fa/enable", { method: "POST", json: { password, code } });
        me = await api("/users/me");
        profile();
        clear(root).append(recoveryCodes(res.recovery_codes || []));
      } catch (err) { showFormErrors(form, err); }
    });
  });
}

start(async () => {
  me = await appShell();
  profile();
  nameForm();
  passwordForm();
  await tfa();
});
