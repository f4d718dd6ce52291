#!/usr/bin/env python3
"""A client of a pod's podrun socket API (docs/api.md), as root:

    examples/api_client.py NAME status
    examples/api_client.py NAME events [--watch]
    examples/api_client.py NAME stop [GRACE]
"""
import json, socket, sys

name, op, *rest = sys.argv[1:]
request = {"version": 1, "op": op}
if op == "events" and rest == ["--watch"]:
    request["watch"] = True
if op == "stop" and rest:
    request["graceSeconds"] = int(rest[0])
with socket.socket(socket.AF_UNIX) as s:
    s.connect(f"/run/podrun/{name}/api.sock")
    s.sendall(json.dumps(request).encode() + b"\n")
    for line in s.makefile():
        reply = json.loads(line)
        if not reply["ok"]:
            sys.exit(f"error: {reply['error']}")
        if not request.get("watch"):
            print(json.dumps(reply, indent=2))
            break
        for event in reply.get("events", [reply.get("event")]):
            print(json.dumps(event), flush=True)
