"""`make run` prints one line per request: the app's JSON access line (not also a bare `request` line from the root
logger, nor http.server's own line)."""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.request
from typing import Any

import pytest
from chalice.local import LocalDevServer

from chalicelib.process import observability
from devtools import devserver
from devtools.dev_http import DevRequestHandler
from tests.conftest import Api


def test_a_request_prints_one_line_the_json_access_line(
    api: Api,
    chalice_config: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Powertools' handler keeps the stdout it found at import; here it writes where the test reads.
    json_lines = io.StringIO()
    monkeypatch.setattr(observability.logger.registered_handler, "stream", json_lines)
    service = logging.getLogger(observability.SERVICE)
    before = service.propagate
    devserver.configure_logging()
    server = LocalDevServer(chalice_config.chalice_app, chalice_config, "127.0.0.1", 0, handler_cls=DevRequestHandler)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        capfd.readouterr()
        caplog.clear()
        port = server.server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams/one-log-line") as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)
        service.propagate = before
    out, err = capfd.readouterr()
    lines = [line for line in (json_lines.getvalue() + out + err).splitlines() if "one-log-line" in line]
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["path"] == "/streams/one-log-line"
    # Nothing reached the root logger's handlers, where `logging.basicConfig` printed the bare message again.
    assert not [r for r in caplog.records if r.name == observability.SERVICE]
