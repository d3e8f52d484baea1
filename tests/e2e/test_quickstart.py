"""The README's quickstart, run as the README writes it (issue 11), so the two cannot drift.

The three marked blocks (``<!-- quickstart: hub|receiver|client -->``) are taken from
README.md and run with bash in a fresh folder that has the project's ``.venv`` (a link), as
a new user's clone would. Three changes only, so the test can run beside other sessions:
the ports 8080 and 9000 become free ones, and ``make run`` becomes the command it ends in
(``.venv/bin/koppelhub run``; tests/unit/test_packaging.py checks that it does), since the
install step is this test session's own. Done when the receiver printed the derived event
with a verified signature.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


def quickstart_blocks() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"<!-- quickstart: (\w+) -->\n```sh\n(.*?)```", text, flags=re.DOTALL)
    return dict(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Output:
    """A process's merged output, collected by a thread; :meth:`wait_for` a pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        self._changed = threading.Condition()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                self.text += line
                self._changed.notify_all()

    def join(self) -> None:
        self._thread.join(timeout=10)

    def wait_for(self, pattern: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: re.search(pattern, self.text) is not None, timeout)


def start(script: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopped as a whole below
    )


def stop(proc: subprocess.Popen[str], output: Output | None) -> None:
    """Ctrl-C to the whole process group (as in a terminal), then close its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if output is not None:
        output.join()
    assert proc.stdout is not None
    proc.stdout.close()


def test_the_readme_quickstart_delivers_a_signed_event_to_the_local_receiver(tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    assert set(blocks) == {"hub", "receiver", "client"}, "README.md lost a quickstart block"
    hub_port, receiver_port = free_port(), free_port()

    def adapt(script: str) -> str:
        script = script.replace("localhost:8080", f"localhost:{hub_port}")
        script = script.replace("9000", str(receiver_port))
        return script.replace("make run", ".venv/bin/koppelhub run")

    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    env |= {"KOPPELHUB_HTTP_PORT": str(hub_port), "KOPPELHUB_LOG_LEVEL": "warning"}

    hub = start(adapt(blocks["hub"]), tmp_path, env)
    hub_output = Output(hub)
    receiver: subprocess.Popen[str] | None = None
    received: Output | None = None
    try:
        assert hub_output.wait_for("Koppelhub is running", timeout=120), hub_output.text
        with httpx.Client(base_url=f"http://127.0.0.1:{hub_port}") as client:
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the hub did not become ready"
                time.sleep(0.2)

        receiver = start(adapt(blocks["receiver"]), tmp_path, env)
        received = Output(receiver)
        assert received.wait_for("Receiving webhooks on", timeout=30), received.text

        client_run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", adapt(blocks["client"])],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert client_run.returncode == 0, client_run.stderr
        assert '{"accepted":["quickstart-1"]}' in client_run.stdout

        derived = r"nl\.softwarecatalogus\.gebruik\.aangemaakt\.v1 .*subject=gebruik-123 .*signature verified"
        assert received.wait_for(derived, timeout=60), received.text
        assert "handshake from koppelhub.local: allowed" in received.text
        assert "id=quickstart-1" in received.text
        assert "REFUSED" not in received.text
    finally:
        if receiver is not None:
            stop(receiver, received)
        stop(hub, hub_output)
    assert hub.returncode == 0, hub_output.text  # a clean stop on Ctrl-C
