"""A local stand-in for the Electricity Maps API: an HTTP server on 127.0.0.1 (a free port, in a
thread) that plays recorded answers and keeps every request it was sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "em-test-token-7Q2x"


@dataclass
class Seen:
    """One request the server was sent."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeApi:
    """The server: ``answers`` maps a path to (status, fixture file name); ``seen`` lists the requests."""

    url: str
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            fake.seen.append(Seen(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()}))
            status, name = fake.answers.get(parts.path, (404, "not_found"))
            body = (FIXTURES / name).read_bytes() if (FIXTURES / name).is_file() else b'{"message": "Not found"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v3"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 go straight to the test server, whatever proxy the machine sets."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN", raising=False)
