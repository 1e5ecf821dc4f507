"""Fixtures: one loopback HTTP server per session, one repository and client per test.

The client binary is $VIGIL_TUF_CLIENT, else $CARGO_TARGET_DIR/debug/vigil-tuf-client,
else <workspace>/target/debug/vigil-tuf-client (build it with
`cargo build -p ota --bin vigil-tuf-client`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tufrepo import Client, Repo, Server  # noqa: E402

WORKSPACE = Path(__file__).resolve().parents[3]


def client_binary() -> str:
    env = os.environ.get("VIGIL_TUF_CLIENT")
    if env:
        return env
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "vigil-tuf-client")
    candidates.append(WORKSPACE / "target" / "debug" / "vigil-tuf-client")
    for c in candidates:
        if c.exists():
            return str(c)
    pytest.fail(
        "vigil-tuf-client binary not found (looked at $VIGIL_TUF_CLIENT and "
        + ", ".join(map(str, candidates))
        + "); run `cargo build -p ota --bin vigil-tuf-client` first",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("served"))
    yield s
    s.close()


@pytest.fixture
def make_repo(server, request):
    counter = {"n": 0}

    def make(**kw) -> Repo:
        counter["n"] += 1
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in request.node.name)
        name = f"{safe[:60]}-{counter['n']}"
        return Repo(server, name, **kw)

    return make


@pytest.fixture
def repo(make_repo) -> Repo:
    return make_repo()


@pytest.fixture
def make_client(tmp_path):
    binary = client_binary()
    counter = {"n": 0}

    def make(repo: Repo) -> Client:
        counter["n"] += 1
        return Client(binary, tmp_path / f"client{counter['n']}", repo)

    return make


@pytest.fixture
def client(make_client, repo) -> Client:
    c = make_client(repo)
    assert c.init() == 0, c.last_stderr
    return c
