"""A loopback stand-in for Tencent Cloud SMS's API: it checks each request's TC3-HMAC-SHA256
signature the way the provider documents it, and answers from a script. No network leaves the host."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_ID, SECRET_KEY = "AKIDtest", "test-secret-key"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_signature(secret_key: str, *, host: str, content_type: str, payload: bytes, timestamp: int, service: str) -> str:
    canonical = f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{hashlib.sha256(payload).hexdigest()}"
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeTencent:
    port: int = 0
    # Answers in order (the last repeats): "ok", an error code, "status:<code>", or "hang".
    script: list[str] = field(default_factory=lambda: ["ok"])
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        step = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        if step == "hang":
            self.release.wait(30)
        if step in ("ok", "hang") or step.startswith("status:"):
            code = "Ok" if step in ("ok", "hang") else step.removeprefix("status:")
            status = {"SerialNo": "s1", "PhoneNumber": body["PhoneNumberSet"][0], "Fee": 1, "SessionContext": "", "Code": code}
            return {"Response": {"SendStatusSet": [status], "RequestId": "r1"}}
        return {"Response": {"Error": {"Code": step, "Message": f"{step} for {body['PhoneNumberSet'][0]}"}, "RequestId": "r1"}}


def handler_for(fake: FakeTencent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = self.rfile.read(int(self.headers["Content-Length"]))
            auth = self.headers["Authorization"]
            timestamp = int(self.headers["X-TC-Timestamp"])
            expected = tc3_signature(
                SECRET_KEY,
                host=self.headers["Host"],
                content_type=self.headers["Content-Type"],
                payload=payload,
                timestamp=timestamp,
                service="sms",
            )
            signed = auth.startswith(f"TC3-HMAC-SHA256 Credential={SECRET_ID}/") and auth.endswith(f"Signature={expected}")
            body = json.loads(payload)
            fake.requests.append({"headers": dict(self.headers), "body": body, "signed": signed})
            if not signed:
                fake.bad_signatures += 1
                answer: dict[str, Any] = {
                    "Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad"}, "RequestId": "r0"}
                }
            else:
                answer = fake.answer(body)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_tencent(*script: str) -> Iterator[FakeTencent]:
    fake = FakeTencent(script=list(script) or ["ok"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
