// The crypto wallet's pages: "Copy" buttons for addresses and signatures (no inline script: CSP).
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) {
    return;
  }
  const label = button.textContent;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    button.textContent = button.dataset.copied || label;
    setTimeout(() => { button.textContent = label; }, 1500);
  }).catch(() => {
    // Clipboard refused (no permission, insecure context): the text stays selectable.
  });
});
