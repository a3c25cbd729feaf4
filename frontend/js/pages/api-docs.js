// The API reference (/api/v1/docs): Swagger UI (vendored, loaded by the page as `SwaggerUIBundle`) over this
// server's OpenAPI document. The document is read with the tab's access token when there is one (API_DOCS=admins
// requires an admin's); "Try it out" requests carry that token too, so an admin can call the API from here.

import { apiUrl, loginUrl, refreshTokens, tokens } from "../api.js";

const status = document.querySelector(".api-docs-status");

function say(text, link) {
  status.textContent = text;
  if (link) {
    status.append(" ");
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    status.append(a);
  }
}

async function readDocument(retried = false) {
  const headers = { Accept: "application/json" };
  if (tokens.access) headers.Authorization = `Bearer ${tokens.access}`;
  const res = await fetch(status.dataset.openapi || apiUrl("/openapi.json"), { headers });
  if (res.status === 401 && tokens.refresh && !retried && (await refreshTokens())) return readDocument(true);
  return res;
}

async function main() {
  let res;
  try {
    res = await readDocument();
  } catch {
    say("The API reference could not be loaded: the server did not answer.");
    return;
  }
  if (res.status === 401) {
    say("The API reference is for administrators on this server.", { href: loginUrl(), text: "Sign in" });
    return;
  }
  if (res.status === 403) {
    say("The API reference is for administrators on this server.");
    return;
  }
  if (!res.ok) {
    say(`The API reference could not be loaded (HTTP ${res.status}).`);
    return;
  }
  const spec = await res.json();
  say("");
  window.ui = window.SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    requestInterceptor(request) {
      if (tokens.access && !request.headers.Authorization) request.headers.Authorization = `Bearer ${tokens.access}`;
      return request;
    },
  });
}

main();
