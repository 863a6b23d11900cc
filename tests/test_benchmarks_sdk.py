"""``python -m benchmarks.lifecycle`` on our side only, small: the script runs end to end
(children on 127.0.0.1 port 0, SIGTERM, clients vanishing behind BaseHTTPMiddleware) and
reports an SDK server on our transport clean, from its JSON output.

The SDK-on-uvicorn side is a figure, not a requirement, so it is not run here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent


async def test_the_lifecycle_script_reports_an_sdk_server_on_our_transport_clean(tmp_path: Path) -> None:
    out = tmp_path / "lifecycle.json"
    command = [
        sys.executable, "-m", "benchmarks.lifecycle", "--quick", "--sides", "trio-mcp-http",
        "--streams", "6", "--clients", "12", "--out", str(out),
    ]  # fmt: skip
    with trio.fail_after(90):
        done = await trio.run_process(command, cwd=ROOT, capture_stdout=True, capture_stderr=True)
    doc = json.loads(out.read_text())
    shutdown = doc["results"]["shutdown"]["trio-mcp-http"]
    vanish = doc["results"]["vanish"]["trio-mcp-http"]
    assert "failed" not in shutdown, shutdown
    assert "failed" not in vanish, vanish

    # SIGTERM: every GET stream ended with its chunked terminator; every call got one
    # answer, a result if it could finish within the grace period, else an error.
    assert (shutdown["sessions"], shutdown["get_streams"], shutdown["posts"]) == (6, 6, 6)
    assert shutdown["get_outcomes"] == {"clean": 6}
    assert shutdown["posts_one_response"] == 6
    assert shutdown["short_answers"] == {"result": 3}
    assert shutdown["long_answers"] == {"error": 3}
    assert shutdown["gets_ended_s"][0] >= doc["profile"]["grace"] - 0.2  # held open while calls ran
    assert (shutdown["returncode"], shutdown["killed"], shutdown["error_lines"]) == (0, False, 0)

    # Vanishing clients: each exchange completed at the server's edge (499 where the
    # client left before a response began, else 200), nothing raised, still serving.
    assert vanish["clients"] == 12
    assert vanish["completed_by_kind"] == {"body": 4, "after": 4, "stream": 4}
    assert vanish["statuses"] == {"499": 4, "200": 8}
    assert vanish["no_response_returned"] == 0
    assert (vanish["tracebacks"], vanish["error_lines"]) == (0, 0)
    assert vanish["answers_afterwards"] is True
    assert vanish["afterwards_through_middleware"] is True

    table = done.stdout.decode()
    assert "trio-mcp-http" in table
    assert "6/6" in table
