"""The playground page (issue 9) in a real browser: headless Chromium (tests/service/cdp.py) against the real
service of the session fixture, on loopback. Each browser test leaves a screenshot in
$DJEPA_TEST_ARTIFACTS/playground/ (default: the test's tmp_path).

Without Chromium the browser tests skip, unless DJEPA_REQUIRE_BROWSER=1 (.ci/run), where they fail."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import AppConfig
from service.errors import NotReady
from service.ingress.http import create_app
from service.types import GeneratedImage, ImageItem, ModelInfo
from tests.service.cdp import Browser, Page, chromium_path
from tests.service.conftest import Served

REQUIRE_BROWSER = os.environ.get("DJEPA_REQUIRE_BROWSER") == "1"
CHROMIUM = chromium_path()
needs_browser = pytest.mark.skipif(CHROMIUM is None and not REQUIRE_BROWSER,
                                   reason="chromium is not installed (apt-get install chromium, or `make sysdeps` "
                                          "as root); DJEPA_REQUIRE_BROWSER=1 makes this a failure")
GENERATION_LIMIT_S = 240  # a bound on one generation on a loaded 2-core machine, not a speed target


# ---- the page as files: served without a key, under a prefix, out of the schema (in process, no browser) ----

class NoModel:
    async def model_info(self) -> ModelInfo:
        raise NotReady("loading")

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        raise NotReady("loading")


def get_all(paths: list[str], root_path: str = "") -> list[httpx.Response]:
    app = create_app(NoModel(), AppConfig(api_keys_env="DJEPA_TEST_PLAYGROUND_KEYS"))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return [await c.get(p) for p in paths]

    return asyncio.run(go())


def test_page_and_files_are_served_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJEPA_TEST_PLAYGROUND_KEYS", "k" * 32)
    page, js, css, other, models, schema = get_all(
        ["/", "/playground/playground.js", "/playground/playground.css", "/playground/index.html", "/v1/models",
         "/openapi.json"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<script src="playground/playground.js"' in page.text  # relative: works under a route prefix
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http://" not in page.text + js.text + css.text and "https://" not in page.text + js.text + css.text
    assert other.status_code == 401 and models.status_code == 401  # only the page's own files are open
    assert "/" not in schema.json()["paths"]  # not an API route (the fuzz test reads the schema)


def test_page_under_a_route_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJEPA_TEST_PLAYGROUND_KEYS", "k" * 32)
    bare, page, js, models = get_all(["/limited", "/limited/", "/limited/playground/playground.js",
                                      "/limited/v1/models"], root_path="/limited")
    assert bare.status_code == 307 and bare.headers["location"].endswith("/limited/")  # relative URLs need the /
    assert page.status_code == 200 and js.status_code == 200 and models.status_code == 401


# ---- in Chromium, against the real service ----------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed and DJEPA_REQUIRE_BROWSER=1: apt-get install chromium")
    with Browser(CHROMIUM, tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $DJEPA_TEST_ARTIFACTS/playground, else the test's tmp_path."""
    root = os.environ.get("DJEPA_TEST_ARTIFACTS")
    return Path(root) / "playground" if root else tmp_path


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Page]:
    """A fresh tab (own storage); its screenshot is kept whatever the outcome, and it must throw nothing."""
    tab = browser.new_page()
    try:
        yield tab
    finally:
        tab.screenshot(artifacts / f"{request.node.name}.png")
    assert tab.uncaught_errors() == []


def models_of(url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/v1/models", headers=headers, timeout=60)
    answer.raise_for_status()
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def first(models: list[dict[str, Any]], modality: str) -> dict[str, Any] | None:
    return next((m for m in models if m["modality"] == modality), None)


def open_page(page: Page, url: str, loads: int = 1) -> None:
    page.goto(url)
    page.wait_for(f"Number(document.body.dataset.loads) >= {loads}")  # /v1/models answered (or failed)


def set_fields(page: Page, values: dict[str, str]) -> None:
    """Type values into fields by id, in order (a model before its class: the class list follows the model)."""
    page.evaluate(f"""Object.entries({json.dumps(values)}).forEach(([id, v]) => {{
        const el = document.getElementById(id);
        el.value = v;
        el.dispatchEvent(new Event("input", {{bubbles: true}}));
        el.dispatchEvent(new Event("change", {{bubbles: true}}));
    }})""")


def click(page: Page, element_id: str) -> None:
    """A real mouse click at the element's centre (it must be visible and on top)."""
    x, y = page.evaluate(f"""(() => {{
        const el = document.getElementById({json.dumps(element_id)});
        el.scrollIntoView({{block: "center"}});
        const r = el.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2];
    }})()""")
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})


KEY_CODES = {"Enter": 13, "End": 35, "Home": 36, "ArrowLeft": 37, "ArrowRight": 39}


def press_key(page: Page, element_id: str, key: str) -> None:
    """Focus an element and press a key on it, as from the keyboard."""
    page.evaluate(f"document.getElementById({json.dumps(element_id)}).focus()")
    down: dict[str, Any] = {"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": KEY_CODES[key]}
    if key == "Enter":
        down["text"] = "\r"  # the keypress that submits a form
    page.call("Input.dispatchKeyEvent", down)
    page.call("Input.dispatchKeyEvent", {**down, "type": "keyUp", "text": ""})


def press_enter(page: Page, element_id: str) -> None:
    """Enter in a form field: the form's implicit submission."""
    press_key(page, element_id, "Enter")


def finished(page: Page, panel: str) -> dict[str, Any]:
    """Wait for the panel's request to end; its latency text and the error shown (None when none)."""
    page.wait_for(f"""document.getElementById("{panel}-latency").textContent !== "waiting…"
                      && !document.getElementById("{panel}-form").hasAttribute("aria-busy")""", GENERATION_LIMIT_S)
    state: dict[str, Any] = page.evaluate(f"""(() => {{
        const box = document.getElementById("{panel}-error");
        const text = (cls) => box.querySelector(cls).textContent;
        return {{latency: document.getElementById("{panel}-latency").textContent,
                 error: box.hidden ? null : {{status: text(".status"), message: text(".message"),
                                              field: text(".field")}}}};
    }})()""")
    return state


def visible_tabs(page: Page) -> list[str]:
    tabs: list[str] = page.evaluate("[...document.querySelectorAll('[role=tab]')].filter(t => !t.hidden)"
                                    ".map(t => t.id.slice(4))")
    return tabs


@needs_browser
def test_image_grid_decodes_to_the_models_size(page: Page, served: Served) -> None:
    image = first(models_of(served.url), "image")
    assert image is not None
    cls = image["classes"][-1]
    open_page(page, served.url + "/")
    assert "image" in visible_tabs(page)
    set_fields(page, {"image-model": image["id"], "image-class": str(cls["id"]), "image-n": "3", "image-seed": "5",
                      "image-steps": "2"})
    press_enter(page, "image-seed")  # the keyboard submits the form
    state = finished(page, "image")
    assert state["error"] is None
    assert state["latency"].split(" ")[1] == "ms" and int(state["latency"].split(" ")[0]) > 0
    shown = page.evaluate("[...document.querySelectorAll('#image-grid img')]"
                          ".map(i => [i.naturalWidth, i.naturalHeight, i.alt])")
    size = [image["output"]["width"], image["output"]["height"]]
    assert [s[:2] for s in shown] == [size] * 3
    assert all(cls["name"] in s[2] for s in shown)
    assert [s[2].rsplit(" ", 1)[1] for s in shown] == ["5", "6", "7"]  # seeds seed, seed + 1, ...


@needs_browser
def test_progress_shows_previews_then_the_images(page: Page, served: Served) -> None:
    image = first(models_of(served.url), "image")
    assert image is not None
    open_page(page, served.url + "/")
    set_fields(page, {"image-model": image["id"], "image-class": "2", "image-n": "2", "image-seed": "11",
                      "image-steps": "2"})
    click(page, "image-stream")  # the "show progress" toggle: the same request with "stream": true
    assert page.evaluate("document.getElementById('image-stream').checked")
    click(page, "image-form-submit")
    state = finished(page, "image")
    assert state["error"] is None
    previews = int(state["latency"].split(" · ")[-1].split(" ")[0])  # "... · 4 preview(s)"
    assert previews >= 2  # at least one per image
    shown = page.evaluate("[...document.querySelectorAll('#image-grid img')].map(i => [i.naturalWidth, "
                          "i.naturalHeight, i.alt])")
    assert [s[:2] for s in shown] == [[image["output"]["width"], image["output"]["height"]]] * 2
    assert [s[2].rsplit(" ", 1)[1] for s in shown] == ["11", "12"]
    captions = page.evaluate("[...document.querySelectorAll('#image-grid figcaption')].map(c => c.textContent)")
    assert captions == ["class 2 · seed 11", "class 2 · seed 12"]  # the final images replaced the previews


@needs_browser
def test_validation_error_is_shown_verbatim(page: Page, served: Served) -> None:
    image = first(models_of(served.url), "image")
    assert image is not None
    body = {"model": image["id"], "class_id": 0, "n": 2, "seed": -1}
    api = httpx.post(served.url + "/v1/images", json=body, timeout=60)
    assert api.status_code == 422
    expected = api.json()["error"]
    open_page(page, served.url + "/")
    set_fields(page, {"image-model": image["id"], "image-class": "0", "image-n": "2", "image-seed": "-1"})
    click(page, "image-form-submit")
    state = finished(page, "image")
    assert state["error"] is not None
    assert state["error"]["message"] == expected["message"]  # the API's words, as they came
    assert state["error"]["status"] == f"HTTP 422 {expected['code']}:"
    assert f"(field: {expected['field']})" in state["error"]["field"]
    assert state["latency"].endswith("ms · failed")
    assert page.evaluate("document.querySelectorAll('#image-grid img').length") == 0


@needs_browser
def test_video_gif_plays(page: Page, served: Served) -> None:
    video = first(models_of(served.url), "video")
    assert video is not None, "the session fixture serves a video model"
    open_page(page, served.url + "/")
    press_key(page, "tab-image", "End")  # tabs by keyboard: End selects the last one, video
    assert page.evaluate("!document.getElementById('panel-video').hidden && "
                         "document.activeElement.id === 'tab-video' && "
                         "document.getElementById('panel-image').hidden")
    set_fields(page, {"video-model": video["id"], "video-class": str(video["classes"][1]["id"]), "video-seed": "3",
                      "video-frames": "4"})
    click(page, "video-form-submit")
    state = finished(page, "video")
    assert state["error"] is None
    assert "4 frames" in state["latency"]
    width, height = page.evaluate("[document.getElementById('video-out').naturalWidth, "
                                  "document.getElementById('video-out').naturalHeight]")
    w, h = video["output"]["width"], video["output"]["height"]
    assert width > 0 and width % w == 0 and height * w == width * h  # the model's frame, upscaled for viewing


@needs_browser
def test_speech_plays(page: Page, served: Served) -> None:
    speech = first(models_of(served.url), "speech")
    open_page(page, served.url + "/")
    if speech is None:
        assert "speech" not in visible_tabs(page)  # no speech model: no speech tab
        pytest.skip("the service lists no speech model (GET /v1/models): nothing to speak with yet")
    assert "speech" in visible_tabs(page)
    text = "The playground speaks."
    body = {"model": speech["id"], "text": text, "seed": 1, "speed": 1.0, "response_format": "wav"}
    wav = httpx.post(served.url + "/v1/speech", json=body, timeout=GENERATION_LIMIT_S)
    assert wav.status_code == 200, wav.text
    with wave.open(io.BytesIO(wav.content)) as w:
        expected_s = w.getnframes() / w.getframerate()
    click(page, "tab-speech")
    set_fields(page, {"speech-model": speech["id"], "speech-text": text, "speech-seed": "1", "speech-speed": "1"})
    click(page, "speech-form-submit")
    state = finished(page, "speech")
    assert state["error"] is None
    duration = page.evaluate("document.getElementById('speech-audio').duration")
    assert 0.2 < duration < 30  # a short sentence
    assert abs(duration - expected_s) < 0.05  # same seed, same audio: the page plays what the API answered
    assert f"{duration:.2f} s of audio" in state["latency"]


@needs_browser
def test_missing_api_key_shows_the_401_then_a_key_works(page: Page, served: Served, artifacts: Path) -> None:
    deadline = time.monotonic() + GENERATION_LIMIT_S  # the faulty app's generator may be restarting
    while httpx.get(served.faulty_url + "/readyz", timeout=30).status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
    unauthorized = httpx.get(served.faulty_url + "/v1/models", timeout=30)
    assert unauthorized.status_code == 401
    expected = unauthorized.json()["error"]
    bare = httpx.get(served.faulty_url, timeout=30)  # "/faulty": no key asked, sent on to "/faulty/"
    assert bare.status_code == 307 and bare.headers["location"].endswith("/faulty/")
    open_page(page, served.faulty_url)  # under the route prefix /faulty, through that redirect
    assert page.evaluate("location.pathname") == "/faulty/"
    shown = page.evaluate("(() => { const b = document.getElementById('global-error'); return b.hidden ? null : "
                          "[b.querySelector('.status').textContent, b.querySelector('.message').textContent]; })()")
    assert shown == [f"HTTP 401 {expected['code']}:", expected["message"]]
    assert visible_tabs(page) == []
    page.screenshot(artifacts / "test_missing_api_key_shows_the_401_then_a_key_works-without-key.png")

    set_fields(page, {"api-key": served.api_key})
    press_enter(page, "api-key")
    page.wait_for("Number(document.body.dataset.loads) >= 2")
    assert page.evaluate("document.getElementById('global-error').hidden")
    assert page.evaluate("sessionStorage.getItem('djepa.apiKey')") == served.api_key
    assert page.evaluate("document.getElementById('api-key').value") == ""  # not left in the field
    assert visible_tabs(page) == ["image"]  # the faulty app serves no video and no speech
    image = first(models_of(served.faulty_url, {"Authorization": f"Bearer {served.api_key}"}), "image")
    assert image is not None
    set_fields(page, {"image-n": "1", "image-steps": "2"})
    click(page, "image-form-submit")
    state = finished(page, "image")
    assert state["error"] is None
    assert page.evaluate("[...document.querySelectorAll('#image-grid img')].map(i => [i.naturalWidth, "
                         "i.naturalHeight])") == [[image["output"]["width"], image["output"]["height"]]]
