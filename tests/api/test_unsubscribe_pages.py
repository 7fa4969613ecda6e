"""The unsubscribe pages in a real browser (headless Chromium), over HTTP.

The API runs behind a local HTTP server (tests/api/wsgi.py); Chromium loads the link as
a person would. Checked: the confirm page names the masked address and the sender and
has a labelled button; after unsubscribing, the same link says so; a bad link is a page,
not JSON. Screenshots go to the test's temporary directory, or to docs/ with
UPDATE_SCREENSHOTS=1 (how docs/unsubscribe-*.png were made).
"""
from __future__ import annotations

import os
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from dripline import clock, unsubscribe
from tests.api.conftest import TEAM, contact_body
from tests.api.wsgi import wsgi_app
from tests.browser import browse

DOCS = Path(__file__).resolve().parents[2] / "docs"


class Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(api):
    httpd = make_server("127.0.0.1", 0, wsgi_app(api), handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()


def test_the_pages_in_headless_chromium(api, server, settings, tmp_path):
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    contact = api.post("/contacts", contact_body(email="ada@example.com", pipeline_ids=[])).body
    token = unsubscribe.sign(settings.unsubscribe_secret, TEAM, contact["contact_id"], 0, clock.now())
    link = f"{server}/unsubscribe/{token}"

    confirm = browse(link, target / "unsubscribe-confirm.png")
    assert "a\u2022\u2022\u2022@example.com" in confirm and "ada@example.com" not in confirm
    assert '<button type="submit">Unsubscribe</button>' in confirm and "<h1>Unsubscribe</h1>" in confirm

    # What the confirm button sends: a form POST from a browser (accepting HTML).
    request = urllib.request.Request(link, data=b"", method="POST", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 200 and "You\u2019re unsubscribed" in response.read().decode()

    done = browse(link, target / "unsubscribe-done.png")
    assert "You\u2019re unsubscribed" in done and "<form" not in done and "a\u2022\u2022\u2022@example.com" in done

    bad = browse(f"{server}/unsubscribe/{token[:-4]}", target / "unsubscribe-bad-link.png")
    assert "This link does not work" in bad and '"message"' not in bad
