"""HTTP-level limits against a live server (`understudy serve`, app/serving.py): oversized headers and keys,
multipart floods, slow headers and connection floods, secrets in the access log, and the links the
server hands out. Memory is the server process's RSS read from outside (psutil); bounds are lowered
through settings so each test moves little data."""
from __future__ import annotations

import io
import json
import socket
import threading
import time
import wave

import httpx
import openai
import psutil
import pytest

from tests.conftest import assert_openai_error, new_key, start_server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"UNDERSTUDY_LOG_LEVEL": "info", "UNDERSTUDY_HEADER_TIMEOUT_SECONDS": "1", "UNDERSTUDY_MAX_CONNECTIONS": "40",
           "UNDERSTUDY_MAX_IMAGE_BODY_BYTES": str(8 * MiB), "UNDERSTUDY_MAX_AUDIO_BODY_BYTES": str(4 * MiB)}
    srv = start_server(tmp_path_factory.mktemp("http-limits"), env)
    yield srv
    srv.stop()


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _rss(server) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def _exchange(server, head: bytes, body_parts=(), *, timeout: float = 10) -> tuple[bytes, int]:
    """Sends `head` then each of `body_parts` from a thread while reading the answer here: the answer's
    first bytes, and how many body bytes had been sent when it came (a refusal that waits for the whole
    body would have seen them all)."""
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout)
    sent = [0]

    def send() -> None:
        try:
            sock.sendall(head)
            for part in body_parts:
                sock.sendall(part)
                sent[0] += len(part)
        except OSError:
            pass  # the server answered and closed

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        at = sent[0]
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        answer = head + b"\r\n\r\n" + body
    finally:
        sock.close()
        sender.join(10)
    return answer, at


# ---- 5. headers and keys ----

def test_a_10_mb_authorization_header_is_431_and_memory_stays_bounded(server):
    before = _rss(server)
    for _ in range(100):
        answer, _ = _exchange(server, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-" + b"k" * (10 * MiB) + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert _rss(server) - before < 40 * MiB, (before, _rss(server))
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_headers_over_the_limit_in_one_read_are_431_too(server):
    # 100 KB of headers in one piece may reach the app whole: the ASGI check answers, in OpenAI's shape
    answer = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {new_key()}", "x-padding": "p" * 100_000})
    assert_openai_error(answer, 431)
    assert answer.headers.get("x-request-id")


def test_an_overlong_key_is_401_and_never_cached(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-" + "a" * 300, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            client.models.list()
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert "at most 200 characters" in caught.value.message and "a" * 20 not in caught.value.message
    # distinct 50 KB keys (under the header limit): each refused, none remembered
    before = _rss(server)
    with httpx.Client(base_url=f"{server.url}/v1") as raw:
        for i in range(400):
            answer = raw.get("/models", headers={"x-api-key": f"sk-{i:06d}" + "b" * 50_000})
            assert answer.status_code == 401
    assert_openai_error(answer, 401, code="invalid_api_key")
    assert _rss(server) - before < 10 * MiB, (before, _rss(server))
    # keys of ordinary length still work
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as client:
        assert client.models.list().data


# ---- 6. multipart ----

def _multipart(path: str, parts: list[tuple[str, str | None, bytes]], boundary: str = "floodboundary") -> tuple[bytes, list[bytes]]:
    """A chunked multipart request: its head, then one body piece per part (and the closing boundary)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {new_key()}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n" % len(data) + data + b"\r\n"
    pieces = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        pieces.append(chunk(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"))
    pieces.append(chunk(f"--{boundary}--\r\n".encode()) + b"0\r\n\r\n")
    return head, pieces


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01" * int(16000 * seconds))
    return out.getvalue()


def test_an_image_edit_flood_is_refused_early_with_bounded_memory(server):
    png = httpx.post(f"{server.url}/v1/images/generations", headers={"authorization": f"Bearer {new_key()}"},
                     json={"prompt": "x", "size": "256x256", "model": "dall-e-2", "response_format": "b64_json"})
    assert png.status_code == 200
    before = _rss(server)
    # 80 parts of 1 MiB against an 8 MiB body bound: 413 long before the 80 MiB are sent
    flood = [("model", None, b"gpt-image-1"), ("prompt", None, b"x")] + [("image[]", f"{i}.png", b"\x89PNG" + b"\x00" * MiB) for i in range(80)]
    answer, sent = _exchange(server, *_multipart("/v1/images/edits", flood))
    assert _status(answer) == 413 and sent < 40 * MiB, (answer[:300], sent)
    # 17 small images: the 17th part is refused as soon as it is seen (at most 16)
    many = [("prompt", None, b"x")] + [("image[]", f"{i}.png", b"\x89PNG" + b"\x00" * 1000) for i in range(17)]
    answer, _ = _exchange(server, *_multipart("/v1/images/edits", many))
    assert _status(answer) == 400 and b"at most 16" in answer, answer[:400]
    # a file under a name the endpoint does not take, and a second mask
    for parts in ([("prompt", None, b"x"), ("attachment", "a.bin", b"\x00" * 1000)],
                  [("prompt", None, b"x"), ("mask", "m.png", b"\x00"), ("mask", "n.png", b"\x00")]):
        answer, _ = _exchange(server, *_multipart("/v1/images/edits", parts))
        assert _status(answer) == 400, answer[:400]
    for _ in range(5):
        answer, sent = _exchange(server, *_multipart("/v1/images/edits", flood))
        assert _status(answer) == 413 and sent < 40 * MiB
    assert _rss(server) - before < 48 * MiB, (before // MiB, _rss(server) // MiB)


def test_a_transcription_flood_is_refused_at_the_second_file(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as client:
        # an ordinary file over the spool threshold (1 MiB) is transcribed
        audio = _wav(60)  # ~1.9 MiB
        assert client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio)).text
    before = _rss(server)
    for _ in range(3):
        flood = [("model", None, b"whisper-1")] + [("file", f"{i}.wav", audio) for i in range(40)]
        answer, sent = _exchange(server, *_multipart("/v1/audio/transcriptions", flood))
        assert _status(answer) == 400 and b"at most 1" in answer and sent < 20 * MiB, (answer[:300], sent)
        big = [("model", None, b"whisper-1"), ("file", "big.wav", b"RIFF" + b"\x00" * (6 * MiB))]
        answer, sent = _exchange(server, *_multipart("/v1/audio/transcriptions", big))
        assert _status(answer) == 413, answer[:300]
    assert _rss(server) - before < 48 * MiB, (before // MiB, _rss(server) // MiB)


def test_files_and_upload_parts_have_a_body_bound(server):
    # A declared Content-Length over the bound is refused before a byte of the body is read.
    size = 8 * 1024 * 1024 * 1024
    head = (f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {new_key()}\r\nContent-Length: {size}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n").encode()
    answer, _ = _exchange(server, head)
    assert _status(answer) == 413, answer[:300]


def test_an_answer_before_the_body_closes_the_connection_and_the_client_goes_on(server):
    # Answered before its body is in (a 404 here, a 413 or a 401 alike), a request's connection is
    # about to be closed: the answer must say so, or a keep-alive client sends its next request on it
    # and sees "Server disconnected".
    body = b"x" * (4 * MiB)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            early = client.post("/v1/no-such-route", content=body,
                                headers={"Authorization": f"Bearer {new_key()}", "Content-Type": "application/json"})
            assert early.status_code == 404, early.text[:300]
            assert early.headers.get("connection") == "close"
            after = client.get("/v1/models", headers={"Authorization": f"Bearer {new_key()}"})
            assert after.status_code == 200 and after.headers.get("connection") != "close"


def test_a_body_read_whole_keeps_the_connection(server):
    key = new_key()
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        first = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        second = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert first.status_code == second.status_code == 200
    assert "connection" not in first.headers and "connection" not in second.headers


def _read_response(sock: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes]:
    """One response with a Content-Length (status line and headers, body), and what followed it."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without a response (had {data[:200]!r})"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def test_a_request_queued_behind_a_response_gets_its_own_answer(server):
    # A client may send its next request as soon as it has a response's last byte (by Content-Length),
    # before the server has finished that response: the next request waits in line, its body still on
    # its way. The finished response must not take the waiting request for one answered before its body
    # was read (an early 413's connection, closed after a linger): it is answered once its body is in.
    key = new_key()
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    first = f"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    queued = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
        sock.sendall(first + queued)  # one write: the second request's head arrives while the first is served
        models, pending = _read_response(sock)
        assert models.startswith(b"HTTP/1.1 200"), models[:200]
        time.sleep(0.3)  # the first response is over on the server's side too
        sock.sendall(body)
        answer, _ = _read_response(sock, pending)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["object"] == "chat.completion"


# ---- 7. slow headers and connection floods ----

def test_slow_headers_are_closed_after_the_deadline_and_the_cap_holds(server):
    process = psutil.Process(server.process.pid)
    baseline = process.num_fds()
    port = _port(server)
    slow = []
    for i in range(200):  # five times the cap, each stuck in the middle of its headers
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
        slow.append(sock)
    time.sleep(0.2)
    assert process.num_fds() <= baseline + 40 + 5, (baseline, process.num_fds())
    # the server still answers while they hang on
    for _ in range(3):
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    # after the deadline every one of them has been closed: a 408 for a started request, nothing for silence
    deadline = time.monotonic() + 5
    for i, sock in enumerate(slow):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), (i, data[:100])
        sock.close()
    assert process.num_fds() <= baseline + 5
    # a lone connection that trickles its headers is cut off too
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    started = time.monotonic()
    try:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"X-B: 1\r\n", b"X-C: 1\r\n"):
            sock.sendall(piece)
            time.sleep(0.4)
    except OSError:
        pass
    sock.settimeout(5)
    assert sock.recv(4096).startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 3
    sock.close()


def test_keep_alive_connections_beyond_the_cap_make_room(server):
    # 60 idle keep-alive clients against a cap of 40: the oldest idle ones are closed, new requests are served
    clients = [httpx.Client(base_url=server.url, timeout=5) for _ in range(60)]
    try:
        for client in clients:
            assert client.get("/healthz").status_code == 200
        assert psutil.Process(server.process.pid).num_fds() < 200
    finally:
        for client in clients:
            client.close()


# ---- 9. secrets in the access log ----

def test_the_access_log_has_no_key(server):
    secret = "sk-gemini-secret-" + new_key()[-12:]
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    answer = httpx.post(f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent?key={secret}", json=body)
    assert answer.status_code == 200, answer.text
    httpx.post(f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&%6Bey={secret}", json=body)  # the name percent-encoded
    httpx.get(f"{server.url}/v1/models?limit=2&api_key={secret}", headers={"authorization": f"Bearer {new_key()}"})
    time.sleep(0.3)
    log = server.log()
    assert "generateContent?key=[redacted]" in log and "api_key=[redacted]" in log and "%6Bey=[redacted]" in log
    assert secret not in log


# ---- 10. links ----

def _image_url(base: str, headers: dict) -> str:
    answer = httpx.post(f"{base}/v1/images/generations", headers={"authorization": f"Bearer {new_key()}", **headers},
                        json={"prompt": "x", "size": "256x256", "model": "dall-e-2", "response_format": "url"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"][0]["url"]


HOSTILE = {"host": "evil.example", "x-forwarded-proto": "javascript", "x-forwarded-host": "javascript://evil.example/"}


def test_image_urls_ignore_forwarded_headers_and_never_take_another_scheme(server):
    # No public URL, no trusted proxy: the connection's own scheme; a well-formed Host is where the client reached us
    assert _image_url(server.url, HOSTILE).startswith("http://evil.example/v1/images/content/")
    url = _image_url(server.url, {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"})
    assert url.startswith(server.url + "/v1/images/content/") and httpx.get(url).status_code == 200
    # a Host that is not a host[:port] never reaches the handler (Litestar answers 400)
    answer = httpx.post(f"{server.url}/v1/images/generations", headers={"authorization": f"Bearer {new_key()}", "host": "javascript://evil.example"},
                        json={"prompt": "x", "size": "256x256", "model": "dall-e-2", "response_format": "url"})
    assert answer.status_code == 400


def test_image_urls_use_the_public_url(tmp_path):
    srv = start_server(tmp_path / "public", {"UNDERSTUDY_PUBLIC_URL": "https://llm.example.com/", "UNDERSTUDY_TRUST_FORWARDED": "1"})
    try:
        for headers in (HOSTILE, {}, {"x-forwarded-proto": "http", "x-forwarded-host": "other.example"}):
            assert _image_url(srv.url, headers).startswith("https://llm.example.com/v1/images/content/")
    finally:
        srv.stop()


def test_forwarded_headers_count_only_when_trusted(tmp_path):
    srv = start_server(tmp_path / "proxied", {"UNDERSTUDY_TRUST_FORWARDED": "1"})
    try:
        assert _image_url(srv.url, {"x-forwarded-proto": "https", "x-forwarded-host": "llm.example.com"}).startswith(
            "https://llm.example.com/v1/images/content/")
        # a scheme other than http(s) and a malformed forwarded host are ignored
        assert _image_url(srv.url, HOSTILE).startswith("http://evil.example/v1/images/content/")
        assert _image_url(srv.url, {"x-forwarded-proto": "javascript"}).startswith(srv.url + "/v1/images/content/")
    finally:
        srv.stop()


def test_a_public_url_that_is_not_http_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError, match="UNDERSTUDY_PUBLIC_URL must be an http"):
        start_server(tmp_path / "bad", {"UNDERSTUDY_PUBLIC_URL": "javascript://evil.example"}, timeout=20)
