// Scan to pay with the camera (/pay/scan). Opens the rear camera, reads a QR code from the
// frames — with the browser's BarcodeDetector where it has one (Android, macOS, ChromeOS),
// otherwise with jsQR (vendor/jsQR.min.js, loaded only then) — and sends the text through
// the page's own "paste the code's text" form, so a scanned, pasted or photographed code
// takes one path on the server (merchant, amount, confirm, step-up, pay). The server checks
// everything; this script only carries the text. Without a camera the other forms remain.
"use strict";

(() => {
  const box = document.querySelector("[data-scan-camera]");
  const pasteForm = document.querySelector("[data-scan-paste]");
  if (!box || !pasteForm) {
    return;
  }
  const SCAN_INTERVAL_MS = 150;  // a decode every few frames: enough, and spares the battery
  const FRAME_MAX_PX = 720;      // frames are scaled down to this (longest side) for jsQR
  const PAYLOAD_MAX_CHARS = 2048;  // as the server's form field

  const startButton = box.querySelector("[data-scan-start]");
  const startRow = startButton.parentElement;  // hidden while the camera is on
  const stopButton = box.querySelector("[data-scan-stop]");
  const viewfinder = box.querySelector("[data-scan-view]");
  const video = box.querySelector("video");
  const status = box.querySelector("[data-scan-status]");
  const problem = box.querySelector("[data-scan-error]");
  const payloadField = pasteForm.querySelector("textarea[name=payload]");

  let stream = null;
  let timer = null;
  let session = 0;  // bumped on every start and stop: a late frame of an old session is dropped

  const say = (text) => { status.textContent = text || ""; };
  const fail = (text) => {
    problem.textContent = text;
    problem.hidden = false;
    say("");
  };

  const stopCamera = () => {
    session += 1;
    clearTimeout(timer);
    timer = null;
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
    }
    video.srcObject = null;
    viewfinder.hidden = true;
    startRow.hidden = false;
    box.dataset.state = "idle";
  };

  const loadScript = (src) => new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = reject;
    document.head.appendChild(script);
  });

  // A function from the <video> to the decoded text (or null), by whichever means exists.
  const makeDecoder = async () => {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          box.dataset.decoder = "barcode-detector";
          return async (source) => {
            const found = await detector.detect(source);
            return found.length ? found[0].rawValue : null;
          };
        }
      } catch (error) {
        console.warn("bankwallet: BarcodeDetector unusable, using jsQR", error);
      }
    }
    if (!window.jsQR) {
      await loadScript(box.dataset.jsqrSrc);
    }
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    box.dataset.decoder = "jsqr";
    return async (source) => {
      const width = source.videoWidth;
      const height = source.videoHeight;
      if (!width || !height) {
        return null;
      }
      const scale = Math.min(1, FRAME_MAX_PX / Math.max(width, height));
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      context.drawImage(source, 0, 0, canvas.width, canvas.height);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = window.jsQR(frame.data, frame.width, frame.height);
      return found && found.data ? found.data : null;
    };
  };

  const submit = (text) => {
    stopCamera();
    say(box.dataset.msgFound);
    payloadField.value = text.trim().slice(0, PAYLOAD_MAX_CHARS);
    box.dataset.state = "submitted";
    pasteForm.requestSubmit();
  };

  const scanFrames = (decode, mine) => {
    let warned = false;
    const tick = async () => {
      if (mine !== session) {
        return;
      }
      let text = null;
      try {
        text = video.readyState >= video.HAVE_CURRENT_DATA ? await decode(video) : null;
      } catch (error) {
        if (!warned) {  // once: a decoder that fails fails on every frame
          console.warn("bankwallet: a frame could not be read", error);
          warned = true;
        }
      }
      if (mine !== session) {
        return;
      }
      if (text && text.trim()) {
        submit(text);
        return;
      }
      timer = setTimeout(tick, SCAN_INTERVAL_MS);
    };
    tick();
  };

  const cameraMessage = (error) => {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return box.dataset.msgDenied;
    }
    return box.dataset.msgUnavailable;
  };

  const startCamera = async () => {
    stopCamera();
    const mine = session;
    problem.hidden = true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      // Also what an http:// page (not a secure context) sees.
      fail(box.dataset.msgUnavailable);
      box.dataset.state = "unavailable";
      return;
    }
    say(box.dataset.msgStarting);
    let decode;
    try {
      decode = await makeDecoder();
    } catch (error) {
      fail(box.dataset.msgNoDecoder);
      box.dataset.state = "unavailable";
      return;
    }
    let opened;
    try {
      // The rear camera where there is one; "ideal", not "exact", so a laptop's front
      // camera still serves.
      opened = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" } }, audio: false,
      });
    } catch (error) {
      fail(cameraMessage(error));
      box.dataset.state = "unavailable";
      return;
    }
    if (mine !== session) {  // stopped (or restarted) while the permission prompt was up
      opened.getTracks().forEach((track) => track.stop());
      return;
    }
    stream = opened;
    video.srcObject = stream;
    viewfinder.hidden = false;
    startRow.hidden = true;
    stopButton.focus();
    try {
      await video.play();
    } catch (error) {
      stopCamera();
      fail(box.dataset.msgUnavailable);
      box.dataset.state = "unavailable";
      return;
    }
    box.dataset.state = "scanning";
    say(box.dataset.msgScanning);
    scanFrames(decode, mine);
  };

  startButton.addEventListener("click", () => { startCamera(); });
  stopButton.addEventListener("click", () => {
    stopCamera();
    say("");
    startButton.focus();
  });
  // Never leave the camera on behind the user's back.
  window.addEventListener("pagehide", stopCamera);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && stream) {
      stopCamera();
      say("");
    }
  });
  box.hidden = false;
})();
