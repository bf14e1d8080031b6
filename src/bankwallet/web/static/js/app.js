// The customer client's only page-wide script: installs the service worker (offline shell).
"use strict";

if ("serviceWorker" in navigator) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((error) => {
      console.warn("bankwallet: service worker not registered", error);
    });
  });
}
