# mcp_idle.py PORT N STOPFILE: N keep-alive connections to 127.0.0.1:PORT,
# each makes one MCP tools/call and then stays open, idle; prints "ready"
# once all are, and holds them until STOPFILE exists (at most 60 s); N may be
# thousands (the descriptor limit is the caller's to raise).  Used
# by mcp_bench.sh for the memory an idle connection costs a proxy.
import os
import socket
import sys
import time

port, n, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}'
req = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def call(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed before the answer's head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if b" 200 " not in lines[0] + b" ":
        sys.exit("answer: " + lines[0].decode(errors="replace"))
    length = [int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:")]
    if not length:
        sys.exit("answer without Content-Length")
    while len(rest) < length[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed in the answer's body")
        rest += chunk


socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    call(s)
    socks.append(s)
print("ready", flush=True)
for _ in range(1200):
    if os.path.exists(stop):
        break
    time.sleep(0.05)
