#!/usr/bin/env python3
"""py_agent.py URL: a plain Python MCP client, standard library only.

Runs as an agent (agentgatectl run): initialize, notifications/initialized,
tools/call echo over HTTPS with the default SSL context (so it trusts what
SSL_CERT_FILE names, as run arranges), and prints one JSON line with what it
saw and what it is: uid, gid and the Seccomp mode of /proc/self/status.
"""
import json
import os
import ssl
import sys
import urllib.request

URL = sys.argv[1]
CTX = ssl.create_default_context()


def post(body, session=None):
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(URL, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, context=CTX, timeout=20) as resp:
        return resp.headers.get("Mcp-Session-Id"), resp.read().decode()


def message(text):
    """The JSON-RPC message of a JSON or an SSE answer."""
    for line in text.splitlines():
        if line.startswith("data:"):
            return json.loads(line[5:])
    return json.loads(text)


def seccomp_mode():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return -1


session, _ = post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "py_agent", "version": "1"}}})
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
_, answer = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "echo", "arguments": {"message": "from python"}}},
                 session)
result = message(answer).get("result", {})
print(json.dumps({"text": result.get("content", [{}])[0].get("text"),
                  "uid": os.getuid(), "gid": os.getgid(), "seccomp": seccomp_mode()}))
