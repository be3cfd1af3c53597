"""A stand-in for a Databricks workspace's front door, in front of a real `mlflow server`: a real workspace cannot
be reached from here, so this mock keeps what the proxy must get right: every MLflow REST call needs
`Authorization: Bearer <token>` (a personal access token, or an OAuth access token it issued and that has not
expired), and `POST /oidc/v1/token` issues short-lived tokens for the client-credentials grant with HTTP Basic
client authentication, as Databricks' OAuth machine-to-machine flow does. Everything else goes to the real server."""

import base64
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from upstream_stubs import HTTPStub

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class DatabricksFront:
    def __init__(self, mlflow_port, personal_token=None, client_id=None, client_secret=None, token_lifetime=3600):
        self.mlflow_port = mlflow_port
        self.personal_token = personal_token
        self.client = (client_id, client_secret)
        self.token_lifetime = token_lifetime
        self.issued = {}  # token -> expiry (monotonic)
        self.token_requests = 0
        self.rejected = 0
        self.forwarded = []  # (method, path, authorization)
        self.lock = threading.Lock()
        counter = itertools.count(1)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self):
                return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

            def _answer(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _token(self):
                body = self._body()
                form = urllib.parse.parse_qs(body.decode())
                expected = "Basic " + base64.b64encode(f"{front.client[0]}:{front.client[1]}".encode()).decode()
                if self.headers.get("Authorization") != expected or front.client[0] is None:
                    return self._answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
                if form.get("grant_type") != ["client_credentials"] or form.get("scope") != ["all-apis"]:
                    return self._answer(400, {"error": "invalid_request"})
                token = f"dbx-oauth-token-{next(counter)}-e2e"
                with front.lock:
                    front.token_requests += 1
                    front.issued[token] = time.monotonic() + front.token_lifetime
                self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": front.token_lifetime,
                                   "scope": "all-apis"})

            def _authorized(self):
                header = self.headers.get("Authorization", "")
                if not header.startswith("Bearer "):
                    return False
                token = header[len("Bearer "):]
                if front.personal_token and token == front.personal_token:
                    return True
                with front.lock:
                    expiry = front.issued.get(token)
                return expiry is not None and time.monotonic() < expiry

            def _any(self):
                if self.path.startswith("/oidc/v1/token") and self.command == "POST":
                    return self._token()
                body = self._body()
                if not self._authorized():
                    with front.lock:
                        front.rejected += 1
                    return self._answer(401, {"error_code": "UNAUTHENTICATED", "message": "Credential was not sent or was invalid."})
                with front.lock:
                    front.forwarded.append((self.command, self.path, self.headers.get("Authorization")))
                upstream = http.client.HTTPConnection("127.0.0.1", front.mlflow_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.stub = HTTPStub(Handler)
        self.url = self.stub.url

    def close(self):
        self.stub.close()
