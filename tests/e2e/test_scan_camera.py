"""Scan to pay with the camera, in a real Chromium whose camera is a fake device playing a Y4M
video of a real merchant's QR code, against a real server: the code read from the frames goes
through the paste form, the page shows the merchant and the amount, the customer pays and the
wallet's balance drops by that much. Without a camera (or without permission) the page says
so and the paste and photo forms stay.

Headless Chromium on Linux has no ``BarcodeDetector`` (the Shape Detection API is Android,
macOS and ChromeOS only; checked here, so a Chromium that grows one is noticed): the journey
exercises the jsQR fallback. The detector's branch of js/scan.js runs once against a stand-in
``BarcodeDetector`` (made of jsQR, injected before the page loads), for its wiring only."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
import servers
from conftest import free_port

from bankwallet.demo import CUSTOMERS
from bankwallet.demo import PASSWORD as DEMO_PASSWORD
from bankwallet.payments import objects
from bankwallet.payments import qr as payments_qr

from .conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, SERVER_START_TIMEOUT_S, wallet_env

pytestmark = pytest.mark.e2e

MERCHANT = {"name": "西湖茶馆", "city": "Hangzhou", "mcc": "5812", "country": "CN"}
PAYER = CUSTOMERS["alice"]  # funded by `bankwallet demo`
OWNER = CUSTOMERS["bob"]
VIDEO_WIDTH, VIDEO_HEIGHT = 640, 480
VIDEO_FRAMES = 3  # Chromium loops the file
SCAN_TIMEOUT_MS = 20_000
VENDOR_JSQR = (Path(__file__).parents[2] / "src/bankwallet/web/static/vendor/jsQR.min.js")


# -- the server: demo customers and a merchant ------------------------------------------------


@dataclass(frozen=True)
class Shop:
    url: str
    merchant_id: uuid.UUID
    secret_key: str

    def payment(self, amount_minor: int) -> str:
        """A new payment of ``amount_minor`` CNY, as the text of its dynamic QR code."""
        # With an Idempotency-Key, as a shop's till would send it. (Without one, the first
        # intent of a merchant waits for SQLite's write lock until the busy timeout.)
        r = httpx.post(f"{self.url}/stripe/v1/payment_intents",
                       data={"amount": amount_minor, "currency": "cny"},
                       headers={"Authorization": f"Bearer {self.secret_key}",
                                "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
        assert r.status_code == 200, r.text
        intent_id = objects.parse_public_id("payment_intent", r.json()["id"])
        assert intent_id is not None
        return payments_qr.dynamic_qr(merchant_id=self.merchant_id, intent_id=intent_id,
                                      amount_minor=amount_minor, currency="CNY",
                                      **MERCHANT).encode()

    def static_code(self) -> str:
        return payments_qr.static_qr(merchant_id=self.merchant_id, **MERCHANT).encode()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A server on a database filled by ``bankwallet demo`` (customers with money), plus a
    merchant owned by one of them, made with ``bankwallet merchants create``."""
    workdir = tmp_path_factory.mktemp("e2e-scan")
    env = wallet_env(workdir)
    run = {"cwd": workdir, "env": env, "capture_output": True, "text": True,
           "timeout": SERVER_START_TIMEOUT_S * 4}
    loaded = subprocess.run(servers.bankwallet("demo"), **run)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    made = subprocess.run(servers.bankwallet(
        "merchants", "create", "--owner-phone", OWNER, "--name", MERCHANT["name"],
        "--city", MERCHANT["city"], "--mcc", MERCHANT["mcc"], "--country", MERCHANT["country"]),
        **run)
    assert made.returncode == 0, made.stdout + made.stderr
    merchant = json.loads(made.stdout.strip().splitlines()[-1])

    port = free_port()
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=workdir / "server.log",
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield Shop(url, uuid.UUID(merchant["id"]), merchant["secret_key"])


# -- the fake camera: a Y4M video of the code ----------------------------------------------------


def qr_y4m(payload: str, path: Path) -> Path:
    """A few grey frames (YUV 4:2:0, chroma flat at 128) of the code, black on white,
    centred, as big as fits with its quiet zone."""
    code = segno.make_qr(payload, error="m")
    rows = [[bool(bit) for bit in row] for row in code.matrix]
    border = 4
    modules = len(rows) + 2 * border
    scale = min(VIDEO_WIDTH, VIDEO_HEIGHT) // modules
    assert scale >= 3, f"a {len(rows)}-module code does not fit {VIDEO_WIDTH}×{VIDEO_HEIGHT}"
    left = (VIDEO_WIDTH - len(rows) * scale) // 2
    top = (VIDEO_HEIGHT - len(rows) * scale) // 2
    white, black = 235, 16  # video levels
    luma = bytearray([white]) * (VIDEO_WIDTH * VIDEO_HEIGHT)
    for r, row in enumerate(rows):
        line = bytearray([white]) * VIDEO_WIDTH
        for c, dark in enumerate(row):
            if dark:
                line[left + c * scale:left + (c + 1) * scale] = bytes([black]) * scale
        for y in range(top + r * scale, top + (r + 1) * scale):
            luma[y * VIDEO_WIDTH:(y + 1) * VIDEO_WIDTH] = line
    chroma = bytes([128]) * ((VIDEO_WIDTH // 2) * (VIDEO_HEIGHT // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{VIDEO_WIDTH} H{VIDEO_HEIGHT} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(VIDEO_FRAMES):
            out.write(b"FRAME\n" + bytes(luma) + chroma + chroma)
    return path


@pytest.fixture
async def playwright() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as running:
        yield running


async def camera_browser(playwright: Any, video: Path) -> Any:
    """Chromium whose only camera plays ``video``, and which allows it without asking."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"])


async def signed_in(browser: Any, shop: Shop, *, permissions: list[str] | None = None,
                    init_script: str | None = None) -> tuple[Any, Any, list[str]]:
    """A phone in English, logged in as the payer; and a list collecting script errors."""
    from playwright.async_api import expect

    context = await browser.new_context(base_url=shop.url, locale="en-GB", **PHONE)
    await context.add_cookies([{"name": "lang", "value": "en", "url": shop.url}])
    if permissions is not None:
        await context.grant_permissions(permissions, origin=shop.url)
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto("/login?next=/wallet")
    await page.get_by_label("Mobile number or e-mail").fill(PAYER)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/wallet$"))
    return context, page, problems


def minor_units(text: str) -> int:
    """``CN¥4,321.50`` → 432150."""
    digits = re.sub(r"[^\d.]", "", text)
    whole, _, cents = digits.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


async def wallet_balance(page: Any) -> int:
    await page.goto("/wallet")
    return minor_units(await page.locator(".balance-amount").first.inner_text())


async def remember_decoder(page: Any) -> None:
    """Keep which decoder read the code (js/scan.js marks it on the box) past the form's
    navigation, with how often a stand-in detector was asked."""
    await page.evaluate("""() => {
      const box = document.querySelector("[data-scan-camera]");
      document.querySelector("[data-scan-paste]").addEventListener("submit", () => {
        sessionStorage.setItem("decoder", box.dataset.decoder);
        sessionStorage.setItem("calls", String(self.__detectorCalls || 0));
      });
    }""")


# -- the journeys ----------------------------------------------------------------------------------


async def test_headless_chromium_on_linux_has_no_barcode_detector(playwright: Any) -> None:
    """Why the journey below runs the jsQR fallback. If this fails, Chromium grew the Shape
    Detection API on Linux: the journey then runs the detector and needs a look."""
    browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                               args=CHROMIUM_ARGS)
    try:
        page = await browser.new_page()
        assert await page.evaluate("'BarcodeDetector' in window") is False
    finally:
        await browser.close()


async def test_scan_a_payment_code_with_the_camera_then_pay(playwright: Any, shop: Shop,
                                                            tmp_path: Path) -> None:
    from playwright.async_api import expect

    amount_minor = 38_50
    video = qr_y4m(shop.payment(amount_minor), tmp_path / "payment-qr.y4m")
    browser = await camera_browser(playwright, video)
    try:
        context, page, problems = await signed_in(browser, shop)
        before = await wallet_balance(page)

        await page.goto("/pay/scan")
        await remember_decoder(page)
        await page.get_by_role("button", name="Scan with camera").click()
        # Read from the frames, sent through the paste form: the merchant and the amount.
        await expect(page.get_by_text(f"Pay {MERCHANT['name']}")).to_be_visible(
            timeout=SCAN_TIMEOUT_MS)
        await expect(page.get_by_text("CN¥38.50")).to_be_visible()
        await expect(page.locator("[data-scan-camera]")).to_have_count(0)  # not the scanner
        assert await page.evaluate("sessionStorage.getItem('decoder')") == "jsqr"

        await page.get_by_role("link", name="Continue").click()
        await expect(page).to_have_url(re.compile(r"/pay/pi_\w+"))
        await expect(page.get_by_text(MERCHANT["name"])).to_be_visible()
        await page.get_by_role("button", name=re.compile(r"pay", re.I)).click()
        await expect(page.get_by_text("Paid. Thank you!")).to_be_visible()

        assert await wallet_balance(page) == before - amount_minor
        await context.close()
    finally:
        await browser.close()
    assert problems == []


STAND_IN_DETECTOR = """
(() => {
  // A BarcodeDetector as Android's would answer, made of jsQR: for js/scan.js's wiring only.
  const decode = self.jsQR;
  delete self.jsQR;  // so the page cannot take the jsQR path by accident
  class BarcodeDetector {
    static async getSupportedFormats() { return ["qr_code", "ean_13"]; }
    constructor(options) { this.formats = options.formats; self.__detectorCalls = 0; }
    async detect(video) {
      self.__detectorCalls += 1;
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      const context = canvas.getContext("2d");
      context.drawImage(video, 0, 0);
      const frame = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = decode(frame.data, frame.width, frame.height);
      return found ? [{ format: "qr_code", rawValue: found.data }] : [];
    }
  }
  self.BarcodeDetector = BarcodeDetector;
})();
"""


async def test_the_barcode_detector_is_used_where_the_browser_has_one(
        playwright: Any, shop: Shop, tmp_path: Path) -> None:
    from playwright.async_api import expect

    video = qr_y4m(shop.static_code(), tmp_path / "static-qr.y4m")
    browser = await camera_browser(playwright, video)
    try:
        context, page, problems = await signed_in(
            browser, shop, init_script=VENDOR_JSQR.read_text() + STAND_IN_DETECTOR)
        await page.goto("/pay/scan")
        await remember_decoder(page)
        await page.get_by_role("button", name="Scan with camera").click()
        await expect(page.get_by_label("Amount (CNY)")).to_be_visible(timeout=SCAN_TIMEOUT_MS)
        assert await page.evaluate("sessionStorage.getItem('decoder')") == "barcode-detector"
        assert int(await page.evaluate("sessionStorage.getItem('calls')")) >= 1
        # jsQR itself was never fetched: the detector is enough.
        assert await page.evaluate(
            "performance.getEntriesByType('resource').some((e) => e.name.includes('jsQR'))"
        ) is False
        await context.close()
    finally:
        await browser.close()
    assert problems == []


async def test_a_refused_camera_is_explained_and_the_other_ways_remain(
        playwright: Any, shop: Shop) -> None:
    # A camera, but no automatic "allow": the permission prompt is answered "no".
    browser = await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"])
    try:
        await camera_unavailable(browser, shop, "The camera was not allowed.")
    finally:
        await browser.close()


async def test_a_missing_camera_is_explained_and_the_other_ways_remain(
        browser: Any, shop: Shop) -> None:
    # Allowed, but this machine has no camera at all.
    await camera_unavailable(browser, shop, "No camera is available.", permissions=["camera"])


async def camera_unavailable(browser: Any, shop: Shop, message: str, *,
                             permissions: list[str] | None = None) -> None:
    from playwright.async_api import expect

    context, page, problems = await signed_in(browser, shop, permissions=permissions)
    try:
        await page.goto("/pay/scan")
        await page.get_by_role("button", name="Scan with camera").click()
        await expect(page.get_by_role("alert")).to_contain_text(message)
        await expect(page.locator("video")).to_be_hidden()
        await expect(page.get_by_role("button", name="Scan with camera")).to_be_visible()
        await expect(page.get_by_label("QR code text")).to_be_visible()
        await expect(page.get_by_label("Or a photo of the QR code")).to_be_attached()

        # The paste form still takes a code.
        await page.get_by_label("QR code text").fill(shop.static_code())
        await page.get_by_role("button", name="Continue").click()
        await expect(page.get_by_label("Amount (CNY)")).to_be_visible()
    finally:
        await context.close()
    assert problems == []
