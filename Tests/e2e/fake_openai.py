"""An OpenAI-compatible server on 127.0.0.1 for MLflow's OpenAI autolog (`mlflow.openai.autolog()` with the real
`openai` package). Mock by necessity: no model API is reachable here. It answers the chat completions API (a
tool call when tools are offered and no tool result is in the conversation yet, else text), the responses API
and the embeddings API with the shapes OpenAI documents, and records what it was sent."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMBEDDING_DIMENSIONS = 8


class FakeOpenAI:
    def __init__(self):
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                fake.requests.append((self.path, body))
                if self.path.endswith("/chat/completions"):
                    answer = fake.chat(body)
                elif self.path.endswith("/responses"):
                    answer = fake.response(body)
                elif self.path.endswith("/embeddings"):
                    answer = fake.embeddings(body)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def chat(self, body):
        messages = body.get("messages", [])
        wants_tool = bool(body.get("tools")) and not any(m.get("role") == "tool" for m in messages)
        if wants_tool:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
            finish, identifier, usage = "tool_calls", "chatcmpl-tool-1", (31, 9)
        else:
            message = {"role": "assistant", "content": "It is sunny in Paris."}
            finish, identifier, usage = "stop", "chatcmpl-final-2", (52, 7)
        return {"id": identifier, "object": "chat.completion", "created": int(time.time()), "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage),
                          "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}}

    def response(self, body):
        return {"id": "resp_1", "object": "response", "created_at": int(time.time()), "status": "completed",
                "model": "gpt-4o-mini-2024-07-18", "instructions": body.get("instructions"),
                "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": "Hi!", "annotations": []}]}],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13,
                          "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}

    def embeddings(self, body):
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return {"object": "list", "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": i, "embedding": [0.125 * (k + 1) for k in range(EMBEDDING_DIMENSIONS)]}
                         for i, _ in enumerate(inputs)],
                "usage": {"prompt_tokens": 4, "total_tokens": 4}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
