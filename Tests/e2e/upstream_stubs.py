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
            if self.mode == "reject_early":
                body = b'{"error_code": "UNAUTHENTICATED", "message": "no"}'
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                return
            lines = head.split("\r\n")
            headers = [line.split(":", 1) for line in lines[1:]]
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
        finally:
            conn.close()

    def close(self):
        self.stopped = True
        self.sock.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass
