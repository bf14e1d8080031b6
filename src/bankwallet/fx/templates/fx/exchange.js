// The exchange page: counts a quote down and disables its confirm button when it expires
// (the server refuses an expired quote anyway), and lets htmx show refusals (4xx) in place.
"use strict";

(() => {
  const TICK_MS = 250;

  function tick() {
    for (const timer of document.querySelectorAll("[data-fx-countdown]")) {
      if (!timer.dataset.deadline) {
        // The server counted the seconds left: no trust in the phone's clock is needed.
        const left = Number.parseInt(timer.dataset.secondsLeft || "0", 10);
        timer.dataset.deadline = String(Date.now() + left * 1000);
      }
      const left = Math.max(0, Math.ceil((Number(timer.dataset.deadline) - Date.now()) / 1000));
      const seconds = timer.querySelector("[data-fx-seconds]");
      if (seconds && left > 0) {
        seconds.textContent = String(left);
      } else if (left <= 0 && !timer.dataset.expired) {
        timer.dataset.expired = "true";
        timer.textContent = timer.dataset.expiredText || "";
        timer.setAttribute("role", "alert");
        const quote = timer.closest("[data-fx-quote]");
        const button = quote && quote.querySelector("[data-fx-confirm]");
        if (button) {
          button.disabled = true;
        }
      }
    }
  }

  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && event.detail.target &&
        event.detail.target.closest("[data-fx-panel]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  tick();
  window.setInterval(tick, TICK_MS);
})();
