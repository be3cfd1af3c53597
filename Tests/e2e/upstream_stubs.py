"""Small raw-socket upstreams for behaviour a real MLflow server cannot be made to show on demand
(answering before reading the body, never answering, echoing what it received). Mocks by necessity:
each test that uses one says why."""

import json
import socket
import threading


class StubUpstream:
    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.aborted = False
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_head(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        return head.decode("latin-1"), rest

    def _handle(self, conn):
        try:
            head, rest = self._read_head(conn)
            if head is None:
                return
            if self.mode == "silent":
                threading.Event().wait(60)
                return
            if self.mode == "short_answer":
                # Promises 100 bytes, sends 20 and closes: an upstream that dies mid-answer.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                             b'{"experiment": {"ex')
                return
            if self.mode == "large_answer":
                # 256 MiB, sent as fast as the proxy takes it; `aborted` tells whether the proxy let go of it.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                             + str(256 * 1024 * 1024).encode() + b"\r\n\r\n")
                chunk = b"x" * (1024 * 1024)
                try:
                    for _ in range(256):
                        conn.sendall(chunk)
                except OSError:
                    self.aborted = True
                return
            if self.mode == "reject_early":
                body = b'{"error_code": "UNAUTHENTICATED", "message": "no"}'
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                return
            lines = head.split("\r\n")
            headers = [line.split(":", 1) for line in lines[1:]]
            if self.mode == "answer_early":
                self._answer_early(conn, headers, rest)
                return
            chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers)
            if chunked:
                rest = self._read_chunked(conn, rest)
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            echo = json.dumps({"request_line": lines[0], "headers": [[k, v.strip()] for k, v in headers],
                               "body_length": len(rest), "body_prefix": rest[:64].decode("latin-1")}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Upstream: echo\r\n"
                         b"Connection: close\r\nKeep-Alive: timeout=5\r\nContent-Length: " + str(len(echo)).encode()
                         + b"\r\n\r\n" + echo)
        except OSError:
            pass  # the proxy closed or reset the connection mid-exchange: nothing more to answer
        finally:
            conn.close()

    def _answer_early(self, conn, headers, rest):
        """Answers 200 before reading any of the body, then reads and discards the body as a keep-alive HTTP/1.1
        server must, and serves the connection's next request the same way."""
        while True:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                         b'{"early": true}')
            if any(k.lower() == "transfer-encoding" for k, _ in headers):
                self._read_chunked(conn, rest)
            else:
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    rest += chunk
            head, rest = self._read_head(conn)
            if head is None:
                return
            headers = [line.split(":", 1) for line in head.split("\r\n")[1:]]

    @staticmethod
    def _read_chunked(conn, data):
        """Reads and decodes a chunked body (no trailers) that starts with `data`."""
        body = b""
        while True:
            while b"\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return body
                data += more
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                more = conn.recv(65536)
                if not more:
                    return body + data[:size]
                data += more
            if size == 0:
                return body
            body += data[:size]
            data = data[size + 2:]

    def close(self):
        self.stopped = True
        self.sock.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass


class HTTPStub:
    """A `http.server` handler class served on 127.0.0.1 (a free port) in a thread, with its URL and `close()`: the
    common part of the suite's small mock servers (each says why it is a mock)."""

    def __init__(self, handler_class):
        import threading
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
