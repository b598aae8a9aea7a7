# mcp_first.py PORT GOFILE: once GOFILE exists, tries an MCP tools/call to
# 127.0.0.1:PORT every millisecond until one is answered 200; prints the
# CLOCK_REALTIME ns of that answer, of the first connect that was accepted,
# and the number of tries.  Used by mcp_bench.sh for restart to first served
# call: a loop in one process, so no process start sits between two tries.
import os
import socket
import sys
import time

port, go = int(sys.argv[1]), sys.argv[2]
body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}'
req = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

for _ in range(10000):
    if os.path.exists(go):
        break
    time.sleep(0.001)
first_connect = None
for tries in range(1, 20001):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if first_connect is None:
                first_connect = time.time_ns()
            s.sendall(req)
            if s.recv(4096).startswith(b"HTTP/1.1 200 "):
                print(time.time_ns(), first_connect, tries)
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.001)
sys.exit("no call answered in 20000 tries")
