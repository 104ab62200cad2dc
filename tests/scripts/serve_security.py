"""Hostile and malformed requests against `expt serve` over raw sockets (tests/scripts/serve_security.sh).

    serve_security.py HOST PORT SECRET_TEXT

SECRET_TEXT is the content of a file outside the served directory that a link inside it points to;
no answer may contain it. Every refused request must leave the server answering.
"""
import socket
import sys


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def raw(host, port, data, timeout=10):
    """Sends `data`, returns one whole response (headers and Content-Length bytes of body), or what
    came before the server closed the connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                reply += c
                head, sep, body = reply.partition(b"\r\n\r\n")
                if sep:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if len(body) >= length:
                        break
        except socket.timeout:
            pass
    return reply


def status_of(reply):
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def request(host, port, target, method="GET", headers=None, body=b""):
    hdrs = {"Host": f"{host}:{port}", "Connection": "close"}
    hdrs.update(headers or {})
    if body:
        hdrs["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    return raw(host, port, head.encode("latin-1") + body)


def main():
    host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    ok = request(host, port, "/files/0/sweep.yaml")
    if status_of(ok) != 200:
        fail(f"a file under the directory is not served: {ok[:200]!r}")

    traversal = [
        "/files/0/../../../../etc/passwd",
        "/files/0/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/files/0/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/files/0/.%2e/.%2e/.%2e/etc/passwd",
        "/files/0/%252e%252e/%252e%252e/etc/passwd",
        "/files/0/..%2f..%2f..%2fetc%2fpasswd",
        "/files/0/..%5c..%5c..%5cetc%5cpasswd",
        "/files/0//etc/passwd",
        "/files/0/%2fetc%2fpasswd",
        "/files/0/trials/../../outside.txt",
        "/files/0/./sweep.yaml",
        "/files/0/link_outside",
        "/files/0/trials/%00/x",
        "/files/1/sweep.yaml",
        "/files/00/sweep.yaml",
        "/files/-1/sweep.yaml",
        "/files/99999999999999999999/sweep.yaml",
        "/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/trial?dir=0&id=../../../etc",
        "/api/trial?dir=0&id=%2e%2e%2f%2e%2e",
        "/api/metrics?dir=0&id=..",
        "/api/overview?dir=0%20",
        "/api/overview?dir=1",
    ]
    for target in traversal:
        reply = request(host, port, target)
        code = status_of(reply)
        if code not in (400, 404) or secret in reply or b"root:" in reply:
            fail(f"{target}: status {code}: {reply[:300]!r}")

    for method in ("POST", "PUT", "DELETE", "PATCH"):
        reply = request(host, port, "/api/overview?dir=0", method=method, body=b"x=1")
        if status_of(reply) != 405:
            fail(f"{method} answered {status_of(reply)}: {reply[:200]!r}")

    # A page elsewhere reaching the loopback server through a rebound DNS name.
    reply = request(host, port, "/api/overview?dir=0", headers={"Host": "evil.example:80"})
    if status_of(reply) != 403:
        fail(f"a foreign Host header answered {status_of(reply)}")

    malformed = [
        b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /api/dirs\r\n\r\n",
        b"GET /api/dirs HTTP/9.9\r\n\r\n",
        b"GET " + b"/a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/dirs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Long: " + b"y" * 100000 + b"\r\n\r\n",
        b"POST /api/dirs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\nabc",
        b"POST /api/dirs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x00\x01\x02\xff\xfe" * 100,
        b"GET /%ZZ%G0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ]
    for data in malformed:
        reply = raw(host, port, data)
        code = status_of(reply)
        if reply and (code is None or code < 400):
            fail(f"malformed request {data[:40]!r} answered {reply[:200]!r}")
    # A client that connects and sends half a request, then goes.
    s = socket.create_connection((host, port))
    s.sendall(b"GET /api/di")
    s.close()

    reply = request(host, port, "/api/dirs")
    if status_of(reply) != 200:
        fail("the server stopped answering after the hostile requests")
    print(f"serve_security: {len(traversal)} traversal targets refused, 4 write methods 405, "
          f"foreign Host 403, {len(malformed)} malformed requests refused, still answering")


main()
