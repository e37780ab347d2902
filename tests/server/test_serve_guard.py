"""What `magimac serve` refuses (foreign hosts and origins, non-JSON bodies) and its input limits,
on a real process on 127.0.0.1 with the random-weights checkpoint (it writes until stopped).

The last test stops the server with SIGINT while it streams."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import socket
import time

import pytest

from magimac.server.guard import MAX_BODY_BYTES, origin_pattern, origins_from
from tests.conftest import huge_png
from tests.server.conftest import running

APP_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def server(random_checkpoint, tmp_path_factory):
    with running(random_checkpoint, tmp_path_factory.mktemp("serve-guard"), "--allow-origin", APP_ORIGIN) as s:
        yield s


@pytest.fixture(scope="module")
def model(server):
    return server.get("/v1/models")["data"][0]["id"]


def ask(server, model, headers: dict, body: bytes | None = None, path="/v1/chat/completions",
        method="POST") -> tuple[int, dict, dict]:
    """(status, JSON body, response headers) of one request with exactly these headers."""
    if body is None:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
    conn = connect(server)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw.startswith(b"{") else {}), dict(r.getheaders())
    finally:
        conn.close()


def one_line_error(answer: dict) -> str:
    message = answer["error"]["message"]
    assert "\n" not in message and "Traceback" not in message
    return message


JSON = {"Content-Type": "application/json"}


def test_a_web_page_on_another_name_is_refused(server, model):
    # DNS rebinding: the page's own name now points at 127.0.0.1; text/plain needs no preflight
    status, answer, _ = ask(server, model, {"Host": "evil.example:8080", "Content-Type": "text/plain"})
    assert status == 403 and "the Host 'evil.example:8080' is not this server's" in one_line_error(answer)
    for host in ("localhost:1234", "127.0.0.1", "[::1]:80"):
        assert ask(server, model, {"Host": host, **JSON})[0] == 200, host


def test_a_cross_site_text_plain_post_is_refused(server, model):
    status, answer, _ = ask(server, model, {"Content-Type": "text/plain"})
    assert status == 415 and one_line_error(answer) == "Content-Type must be application/json, got 'text/plain'"


def test_only_allowed_browser_origins_pass(server, model):
    status, answer, _ = ask(server, model, {"Origin": "https://evil.example", **JSON})
    assert status == 403
    assert one_line_error(answer).startswith("the browser origin 'https://evil.example' is not allowed: "
                                             "start magimac serve with --allow-origin")
    for origin in ("http://localhost:3000", "http://127.0.0.1:8080", APP_ORIGIN):
        status, _, headers = ask(server, model, {"Origin": origin, **JSON})
        assert status == 200 and headers["access-control-allow-origin"] == origin
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, authorization"}
    status, _, headers = ask(server, model, preflight, b"", method="OPTIONS")
    assert status == 200 and headers["access-control-allow-origin"] == APP_ORIGIN


def test_magimac_origins_is_a_comma_list_with_wildcards():
    allowed = origin_pattern(origins_from(" chrome-extension://*, https://*.example.org ,"))
    assert allowed.fullmatch("chrome-extension://abc") and allowed.fullmatch("https://a.example.org")
    assert allowed.fullmatch("http://localhost:5173") and not allowed.fullmatch("https://example.com")
    assert origin_pattern(["*"]).fullmatch("https://anything.example")


def connect(server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=60)


def posted(conn: http.client.HTTPConnection) -> tuple[int, str]:
    r = conn.getresponse()
    status, answer = r.status, json.loads(r.read())
    conn.close()
    return status, one_line_error(answer)


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server):
    conn = connect(server)
    conn.putrequest("POST", "/v1/chat/completions")
    for k, v in {**JSON, "Content-Length": str(10**12)}.items():
        conn.putheader(k, v)
    conn.endheaders()
    status, error = posted(conn)
    assert status == 413 and error.startswith(f"the request body is 1,000,000,000,000 bytes: magimac serve reads "
                                              f"at most {MAX_BODY_BYTES:,} bytes (16 MiB)")


def test_a_chunked_body_is_counted_as_it_arrives(server):
    mib = b"[" + b"0," * (2**19 - 1) + b"0]"  # 1 MiB of JSON, sent as one chunk after another
    conn = connect(server)
    conn.request("POST", "/v1/chat/completions", iter([mib] * 17), JSON, encode_chunked=True)
    status, error = posted(conn)
    assert status == 413 and error.startswith("the request body is over the limit: magimac serve reads at most "
                                              "16,777,216 bytes (16 MiB)")


def test_deeply_nested_json_is_one_line(server, model):
    status, answer, _ = ask(server, model, JSON, b"[" * 100_000)
    assert status == 400 and one_line_error(answer) == "the request body nests arrays or objects more than 64 deep"


def test_an_image_of_too_many_pixels_is_a_400(server, model):
    url = "data:image/png;base64," + base64.b64encode(huge_png(20000, 20000)).decode()
    content = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()
    status, answer, _ = ask(server, model, JSON, body)
    assert status == 400 and answer["error"]["param"] == "messages[0].content[1].image_url"
    assert one_line_error(answer) == ("messages[0].content[1].image_url: more than 64 million pixels, the most "
                                      "magimac reads: make it smaller")


def test_a_client_that_leaves_mid_body_is_one_log_line(server):
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=60) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b'Content-Length: 1000\r\n\r\n{"model": ')
    line = "a client went away before its request body arrived (POST /v1/chat/completions)"
    for _ in range(300):  # the server logs it once it notices
        if line in server.log:
            break
        time.sleep(0.1)
    assert server.log.count(line) == 1 and "Traceback" not in server.log and "ClientDisconnect" not in server.log


def test_ctrl_c_ends_every_stream_and_exits(server, model):
    """Last: the server stops.  Before, it went on writing until the length limit."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Go on"}], "stream": True,
                       "max_tokens": 100_000}).encode()
    conn = connect(server)
    conn.request("POST", "/v1/chat/completions", body, JSON)
    stream = conn.getresponse()
    lines = [stream.readline() for _ in range(8)]  # a few chunks: the turn is decoding
    server.proc.send_signal(signal.SIGINT)
    lines += stream.readlines()
    conn.close()
    events = [json.loads(x[5:]) for x in lines if x.startswith(b"data: {")]
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and lines[-2:] == [b"data: [DONE]\n", b"\n"]
    server.proc.wait(timeout=30)  # within seconds (it streamed for minutes before)
    assert "Traceback" not in server.log and "Event loop is closed" not in server.log, server.log
