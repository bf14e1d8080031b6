"""Real server processes for the tests: start one (its output in a log file), wait until it
answers over HTTP, stop it. ``from servers import running`` (tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 4000


def bankwallet(*args: str) -> list[str]:
    """The argv of ``python -m bankwallet ARGS`` with this interpreter."""
    return [sys.executable, "-m", "bankwallet", *args]


def serve_argv(port: int) -> list[str]:
    """``bankwallet serve`` on 127.0.0.1:``port``."""
    return bankwallet("serve", "--host", "127.0.0.1", "--port", str(port))


def start(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv``, its stdout and stderr appended to ``log_path`` (discarded without one).
    ``env`` None inherits this process's environment, ``cwd`` None its directory."""
    if log_path is None:
        return subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
    with log_path.open("ab") as log:
        return subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def log_tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return "(no log)"
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path | None, *,
                     path: str = "/healthz", timeout_s: float = START_TIMEOUT_S,
                     name: str = "the server", poll_s: float = 0.1) -> None:
    """Return once GET ``url`` + ``path`` answers 200. ``pytest.fail`` with the log's tail when
    the process exits first or ``timeout_s`` runs out (the process is stopped then)."""
    health_url = url.rstrip("/") + path
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    stop(process)
    pytest.fail(f"{name} did not answer {path} in {timeout_s} s:\n{log_tail(log_path)}")


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Terminate, wait up to ``timeout_s``, then kill. Nothing to do once it has exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(argv: Sequence[str], *, url: str, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, log_path: Path | None = None, path: str = "/healthz",
            timeout_s: float = START_TIMEOUT_S, name: str = "the server") -> Iterator[str]:
    """``start``, ``wait_until_ready`` and yield ``url``; ``stop`` on the way out."""
    process = start(argv, env=env, cwd=cwd, log_path=log_path)
    try:
        wait_until_ready(url, process, log_path, path=path, timeout_s=timeout_s, name=name)
        yield url
    finally:
        stop(process)
