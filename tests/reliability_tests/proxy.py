"""A TCP proxy on 127.0.0.1 in front of a database server, that a test can make stop
forwarding: a server that accepts connections and never answers, as a network partition or a
stalled server looks to its clients (the sockets stay open, nothing comes back).

Example:
    >>> with StallingProxy("127.0.0.1", 5432) as proxy:  # doctest: +SKIP
    ...     proxy.stall(); proxy.resume()
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

from sqlalchemy.engine import URL, make_url


class StallingProxy:
    """Forwards every connection to ``host:port`` until :meth:`stall`, and again after
    :meth:`resume` (what was sent meanwhile is delivered then, as TCP would)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="stalling-proxy", daemon=True).start()

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parsed: URL = make_url(url)
        return parsed.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def stall(self) -> None:
        """Stop forwarding, in both directions, on every connection, old and new."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._forwarding.wait()  # a new connection is accepted and left unanswered meanwhile
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while not self._forwarding.wait(0.05):
                    if self._closed:
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._forwarding.set()
        self._listener.close()
        for end in self._sockets:
            try:
                end.close()
            except OSError:
                pass
        time.sleep(0.05)

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
