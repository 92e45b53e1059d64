"""Which addresses each tool tries to reach, from ``strace -f -e trace=connect``.

Run once per tool, on the ``start`` and ``many`` scenarios at the small size,
outside the timed measurements. Connections to Unix sockets and to loopback
addresses are local; anything else would be a network access (a DNS query
shows up as a connection to the name server's port 53).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.peers._spawn import spawn

if TYPE_CHECKING:
    from benchmarks.peers.__main__ import Session

INET = re.compile(
    r'sin6?_port=htons\((\d+)\).*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")'
)
LOCAL = ("127.", "::1", "0.0.0.0", "::ffff:127.")


def _remote_addresses(trace: Path) -> set[str]:
    found = set()
    for line in trace.read_text(errors="replace").splitlines():
        match = INET.search(line)
        if match:
            address = match.group(2) or match.group(3)
            if not address.startswith(LOCAL):
                found.add(f"{address}:{match.group(1)}")
    return found


def _audit_tool(session: Session, tool: str) -> dict[str, Any]:
    root = session.root(tool, "audit")
    remote: set[str] = set()
    errors = []
    for scenario in ("start", "many", "table-cold"):
        trace = root / f"{scenario}.trace"
        result = spawn(
            tool,
            scenario,
            root / ("start" if scenario == "start" else "many"),
            size="small",
            env=session.env(tool),
            timeout=session.args.timeout,
            prefix=("strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace)),
        )
        if "error" in result:
            errors.append(f"{scenario}: {result['error']}")
        if trace.exists():
            remote |= _remote_addresses(trace)
    return {"remote_connects": sorted(remote), "errors": errors}


def audit(session: Session, tools: list[str]) -> dict[str, Any]:
    """Per tool: the non-local addresses it tried to connect to (empty is good)."""
    if shutil.which("strace") is None:
        return {"skipped": "strace is not installed"}
    report = {}
    for tool in tools:
        report[tool] = _audit_tool(session, tool)
        print(f"  network {tool:14} {report[tool]['remote_connects'] or 'none'}", flush=True)
    return report
