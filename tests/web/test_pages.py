"""The customer client's shell: pages, language, PWA files, static assets and the CSP."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from bankwallet.app import create_app
from bankwallet.core import i18n
from bankwallet.settings import Settings
from conftest import create_sqlite_database

PAGES = ["/", "/offline"]
ZH_TITLE, EN_TITLE = "把银行装进口袋", "Your bank, in your pocket"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = create_sqlite_database(tmp_path_factory.mktemp("web"))
    app = create_app(Settings(database_url=url, env="test", log_json=False), run_workers=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture(autouse=True)
def no_cookies(client: TestClient) -> None:
    client.cookies.clear()


class PageAudit(HTMLParser):
    """Collects what the CSP would block and what the tests look for."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.html_lang: str | None = None
        self.h1: list[str] = []
        self._script_without_src = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if tag == "script" and not attributes.get("src"):
            self.violations.append("inline <script>")
        if tag == "style":
            self.violations.append("<style> block")
        self.violations += [f"{name} attribute on <{tag}>" for name in attributes
                            if name == "style" or name.startswith("on")]
        self._script_without_src = tag == "script"
        self._in_h1 = self._in_h1 or tag == "h1"

    def handle_endtag(self, tag: str) -> None:
        self._script_without_src = False
        self._in_h1 = self._in_h1 and tag != "h1"

    def handle_data(self, data: str) -> None:
        if self._script_without_src and data.strip():
            self.violations.append("script body")
        if self._in_h1 and data.strip():
            self.h1.append(data.strip())


def audit(html: str) -> PageAudit:
    parser = PageAudit()
    parser.feed(html)
    return parser


def test_home_is_chinese_by_default(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = audit(response.text)
    assert page.html_lang == "zh-CN"
    assert page.h1 == [ZH_TITLE]
    assert "¥0.00" in response.text  # the money filter formats for the locale
    for tab in ("钱包", "支付", "银行卡", "数字资产", "我的"):
        assert tab in response.text
    assert "Accept-Language" in response.headers["vary"]


@pytest.mark.parametrize("header", ["en", "en-GB,en;q=0.9", "fr-FR, en;q=0.5",
                                    "zh-CN;q=0, en;q=0.1"])
def test_home_follows_accept_language(client: TestClient, header: str) -> None:
    page = audit(client.get("/", headers={"Accept-Language": header}).text)
    assert page.html_lang == "en"
    assert page.h1 == [EN_TITLE]


@pytest.mark.parametrize("header", ["zh", "zh-TW,en;q=0.5", "de, zh-Hans-CN;q=0.8"])
def test_any_chinese_preference_gets_simplified_chinese(client: TestClient, header: str) -> None:
    assert audit(client.get("/", headers={"Accept-Language": header}).text).h1 == [ZH_TITLE]


def test_lang_cookie_beats_accept_language(client: TestClient) -> None:
    client.cookies.set("lang", "en")
    page = audit(client.get("/", headers={"Accept-Language": "zh-CN"}).text)
    assert page.h1 == [EN_TITLE]
    assert "CN¥0.00" in client.get("/").text


def test_unknown_lang_cookie_is_ignored(client: TestClient) -> None:
    client.cookies.set("lang", "xx")
    assert audit(client.get("/").text).h1 == [ZH_TITLE]


def test_language_switch_sets_cookie_and_goes_back(client: TestClient) -> None:
    response = client.post("/lang", data={"lang": "en", "next": "/offline"},
                           headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/offline"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("lang=en;") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert audit(client.get("/").text).h1 == [EN_TITLE]

    client.post("/lang", data={"lang": "zh_CN"}, headers={"Origin": "http://testserver"})
    assert audit(client.get("/").text).h1 == [ZH_TITLE]


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "https://evil.example"},
                                     {"Origin": "null"}])
def test_language_switch_refuses_cross_site_posts(client: TestClient,
                                                  headers: dict[str, str]) -> None:
    response = client.post("/lang", data={"lang": "en"}, headers=headers,
                           follow_redirects=False)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_language_switch_rejects_unknown_language(client: TestClient) -> None:
    response = client.post("/lang", data={"lang": "fr"}, follow_redirects=False)
    assert response.status_code == 422
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)", "evil", "/\r\nSet-Cookie: x=1"])
def test_language_switch_never_redirects_off_site(client: TestClient, target: str) -> None:
    response = client.post("/lang", data={"lang": "en", "next": target}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_manifest(client: TestClient) -> None:
    response = client.get("/manifest.webmanifest", headers={"Accept-Language": "en"})
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = json.loads(response.content)
    for field in ("name", "short_name", "start_url", "display", "theme_color",
                  "background_color", "icons", "description", "lang"):
        assert manifest[field], field
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    assert manifest["lang"] == "en"
    sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    assert any("maskable" in icon.get("purpose", "") for icon in manifest["icons"])
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200, icon["src"]


def test_png_icon_is_a_real_png_of_its_size(client: TestClient) -> None:
    response = client.get("/icons/icon-192.png")
    assert response.headers["content-type"] == "image/png"
    body = response.content
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR"
    assert struct.unpack(">II", body[16:24]) == (192, 192)
    assert client.get("/icons/nope.png").status_code == 404


def test_service_worker(client: TestClient) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    source = response.text
    assert 'pathname.startsWith("/api/")' in source
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", source).group(1))
    assert "/offline" in shell
    assert any(url.startswith("/static/css/app.css?v=") for url in shell)
    for url in shell:  # a precache with one missing file fails to install
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(("path", "content_type"), [
    ("/static/css/app.css", "text/css"),
    ("/static/js/app.js", "text/javascript"),
    ("/static/vendor/htmx.min.js", "text/javascript"),
    ("/static/img/icon.svg", "image/svg+xml"),
])
def test_static_assets_are_served(client: TestClient, path: str, content_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)


def test_pages_reference_versioned_assets_that_exist(client: TestClient) -> None:
    html = client.get("/").text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("htmx.min.js?v=" in url for url in urls)
    for url in urls:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_pages_have_csp_and_nothing_it_would_block(client: TestClient, path: str,
                                                   lang: str) -> None:
    client.cookies.set("lang", lang)
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert audit(response.text).violations == []


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_catalogues_hold_every_message_in_the_code(locale: str) -> None:
    """Run ``python -m bankwallet.core.i18n`` after adding strings, then translate them."""
    extracted = {message.id for message in i18n.extract_messages() if message.id}
    catalogue = {message.id for message in i18n.load_catalog(locale) if message.id}
    assert extracted - catalogue == set(), "missing from the catalogue"
    assert catalogue - extracted == set(), "no longer used"


def test_every_message_has_a_chinese_translation() -> None:
    missing = [message.id for message in i18n.load_catalog("zh_CN")
               if message.id and (not message.string or message.fuzzy)]
    assert missing == []
