// Passkeys (WebAuthn) on the login, security and step-up pages. The server sends options as
// JSON (binary fields base64url-encoded) and checks everything; this script only carries
// them between the server and navigator.credentials.
"use strict";

(() => {
  const b64urlToBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const bytesToB64url = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const creationOptions = (o) => ({
    ...o,
    challenge: b64urlToBytes(o.challenge),
    user: { ...o.user, id: b64urlToBytes(o.user.id) },
    excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) })),
  });
  const requestOptions = (o) => ({
    ...o,
    challenge: b64urlToBytes(o.challenge),
    allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) })),
  });

  const credentialJson = (credential) => {
    const r = credential.response;
    const response = { clientDataJSON: bytesToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bytesToB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = bytesToB64url(r.authenticatorData);
      response.signature = bytesToB64url(r.signature);
      if (r.userHandle) response.userHandle = bytesToB64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: bytesToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response,
    };
  };

  const post = async (url, body, csrf) => {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (csrf) headers["x-csrf-token"] = csrf;
    const response = await fetch(url, {
      method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.detail || data.title || String(response.status));
      error.code = data.code;
      throw error;
    }
    return data;
  };

  const bind = (selector, run) => {
    for (const box of document.querySelectorAll(selector)) {
      const button = box.querySelector("[data-passkey-action]");
      const status = box.querySelector("[data-passkey-status]");
      const show = (text) => { status.textContent = text; status.hidden = !text; };
      if (!window.PublicKeyCredential || !navigator.credentials) {
        show(box.dataset.msgUnsupported);
        button.disabled = true;
        continue;
      }
      button.addEventListener("click", async () => {
        button.disabled = true;
        show("");
        try {
          await run(box);
        } catch (error) {
          if (error.code === "step_up_required") {
            window.location.assign(`/me/step-up?next=${encodeURIComponent(window.location.pathname)}`);
            return;
          }
          console.warn("bankwallet: passkey", error);
          show(box.dataset.msgFailed);
        } finally {
          button.disabled = false;
        }
      });
    }
  };

  bind("[data-passkey-login]", async (box) => {
    const started = await post("/api/v1/auth/passkey/login/options");
    const credential = await navigator.credentials.get({ publicKey: requestOptions(started.options) });
    const done = await post("/login/passkey", {
      ceremony_id: started.ceremony_id, credential: credentialJson(credential), next: box.dataset.next || "/",
    });
    window.location.assign(done.redirect);
  });

  bind("[data-passkey-register]", async (box) => {
    const csrf = box.dataset.csrf;
    const started = await post("/api/v1/auth/passkeys/options", {}, csrf);
    const credential = await navigator.credentials.create({ publicKey: creationOptions(started.options) });
    const name = (box.querySelector("#passkey-name") || {}).value || "Passkey";
    await post("/api/v1/auth/passkeys", {
      ceremony_id: started.ceremony_id, credential: credentialJson(credential), name,
    }, csrf);
    window.location.reload();
  });

  bind("[data-passkey-step-up]", async (box) => {
    const csrf = box.dataset.csrf;
    const started = await post("/api/v1/auth/step-up/passkey/options", {}, csrf);
    const credential = await navigator.credentials.get({ publicKey: requestOptions(started.options) });
    await post("/api/v1/auth/step-up/passkey", {
      ceremony_id: started.ceremony_id, credential: credentialJson(credential),
    }, csrf);
    window.location.assign(box.dataset.next || "/me/security");
  });
})();
