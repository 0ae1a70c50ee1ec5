"""Browse _mcp-fleet._tcp with python-zeroconf, an mDNS implementation independent of ours, for N seconds.

Prints each add/remove event as a JSON line as it is seen ({"seen": ...}), so a test can wait for one, then, last,
one JSON object: every event, and the services live at the end with their SRV target, port, addresses and TXT
properties as the other implementation decodes them.
"""
import json
import sys
import time

from zeroconf import ServiceBrowser, Zeroconf

TYPE = "_mcp-fleet._tcp.local."
duration = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0

zc = Zeroconf()
events = []


def on_change(zeroconf, service_type, name, state_change):
    event = {"event": state_change.name, "name": name, "t": time.time()}
    events.append(event)
    print(json.dumps({"seen": event}), flush=True)


browser = ServiceBrowser(zc, TYPE, handlers=[on_change])
time.sleep(duration)
live = []
for e in events:
    if e["event"] == "Removed" and e["name"] in live:
        live.remove(e["name"])
    elif e["event"] == "Added" and e["name"] not in live:
        live.append(e["name"])
services = []
for name in live:
    info = zc.get_service_info(TYPE, name, timeout=3000)
    if info is None:
        services.append({"name": name, "resolved": False})
        continue
    services.append({
        "name": name,
        "resolved": True,
        "server": info.server,
        "port": info.port,
        "addresses": info.parsed_addresses(),
        "txt": {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()},
    })
browser.cancel()
zc.close()
print(json.dumps({"events": events, "services": services}))
