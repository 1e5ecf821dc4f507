"""A TUF repository built with the reference implementation's metadata API (python-tuf),
published to a directory served over loopback HTTP, and a runner for vigil-tuf-client.

Each test owns one Repo (its own directory under the served tree) and one Client (its
own metadata and target directories).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TOP = ("root", "timestamp", "snapshot", "targets")


def in_days(days: float) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


def new_signer(keytype: str = "ed25519") -> Signer:
    if keytype == "ed25519":
        return CryptoSigner.generate_ed25519()
    if keytype == "ecdsa":
        return CryptoSigner.generate_ecdsa()
    if keytype == "rsa-pss":
        return CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256", size=2048)
    if keytype == "rsa-pkcs1":
        return CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256", size=2048)
    raise ValueError(keytype)


class Server:
    """Static files from `base` on 127.0.0.1 (ephemeral port), logging request paths.
    Paths registered in `endless` are answered with an unending body and no length."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.requests: list[str] = []  # paths requested by vigil-tuf-client only
        self.endless: set[str] = set()
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(base), **kw)

            def do_GET(self):  # noqa: N802
                if self.headers.get("User-Agent", "").startswith("vigil-tuf-client"):
                    outer.requests.append(self.path)
                if self.path in outer.endless:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    try:
                        for _ in range(10_000):  # up to ~80 MB, the client must stop far earlier
                            self.wfile.write(b"\x00" * 8192)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Repo:
    """A repository whose metadata is held as python-tuf objects and published on demand."""

    def __init__(self, server: Server, name: str, consistent_snapshot: bool = True, keytype: str = "ed25519") -> None:
        self.server = server
        self.name = name
        self.dir = server.base / name
        self.mdir = self.dir / "metadata"
        self.tdir = self.dir / "targets"
        self.mdir.mkdir(parents=True)
        self.tdir.mkdir(parents=True)
        self.keytype = keytype
        self.signers: dict[str, list[Signer]] = {}
        self.root = Metadata(Root(expires=in_days(365), consistent_snapshot=consistent_snapshot))
        for role in TOP:
            self.add_key(role, new_signer(keytype))
        self.timestamp = Metadata(Timestamp(expires=in_days(1)))
        self.snapshot = Metadata(Snapshot(expires=in_days(7)))
        self.targets = Metadata(Targets(expires=in_days(30)))
        self.delegated: dict[str, Metadata] = {}
        self.publish_root()
        self.publish_all()

    # -- urls -----------------------------------------------------------------------
    @property
    def metadata_url(self) -> str:
        return self.server.url(f"{self.name}/metadata/")

    @property
    def targets_url(self) -> str:
        return self.server.url(f"{self.name}/targets/")

    def requests(self) -> list[str]:
        prefix = f"/{self.name}/"
        return [r[len(prefix):] for r in self.server.requests if r.startswith(prefix)]

    # -- keys ------------------------------------------------------------------------
    def add_key(self, role: str, signer: Signer) -> None:
        self.root.signed.add_key(signer.public_key, role)
        self.signers.setdefault(role, []).append(signer)

    def replace_keys(self, role: str, signers: list[Signer], threshold: int = 1) -> None:
        for keyid in list(self.root.signed.roles[role].keyids):
            self.root.signed.revoke_key(keyid, role)
        self.signers[role] = []
        for s in signers:
            self.add_key(role, s)
        self.root.signed.roles[role].threshold = threshold

    # -- signing and writing -------------------------------------------------------------
    def sign(self, md: Metadata, signers: list[Signer]) -> bytes:
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        return md.to_bytes(JSONSerializer(compact=False))

    def write(self, name: str, data: bytes) -> None:
        (self.mdir / name).write_bytes(data)

    def _role_file(self, role: str, version: int) -> str:
        from urllib.parse import quote

        q = quote(role, safe="")
        return f"{version}.{q}.json" if self.root.signed.consistent_snapshot else f"{q}.json"

    def publish_root(self, extra_signers: list[Signer] | None = None) -> bytes:
        """Signs root with the current root keys (plus `extra_signers`, e.g. the previous
        root's keys during rotation) and writes VERSION.root.json and root.json."""
        signers = list(self.signers["root"]) + list(extra_signers or [])
        seen, uniq = set(), []
        for s in signers:
            if s.public_key.keyid not in seen:
                seen.add(s.public_key.keyid)
                uniq.append(s)
        data = self.sign(self.root, uniq)
        self.write(f"{self.root.signed.version}.root.json", data)
        self.write("root.json", data)
        return data

    def rotate_root(self, mutate=None, sign_with_old: bool = True) -> bytes:
        """Bumps root by one; `mutate(repo)` may change keys; signed by old and new root keys."""
        old = list(self.signers["root"])
        self.root.signed.version += 1
        if mutate:
            mutate(self)
        return self.publish_root(extra_signers=old if sign_with_old else None)

    def targets_md(self, role: str) -> Metadata:
        return self.targets if role == "targets" else self.delegated[role]

    def signers_for(self, role: str) -> list[Signer]:
        return self.signers[role]

    def publish_targets(self, role: str = "targets", bump: bool = True) -> bytes:
        md = self.targets_md(role)
        if bump:
            md.signed.version += 1
        data = self.sign(md, self.signers_for(role))
        self.write(self._role_file(role, md.signed.version), data)
        self.snapshot.signed.meta[f"{role}.json"] = MetaFile(version=md.signed.version)
        return data

    def publish_snapshot(self, bump: bool = True, hashes: bool = True) -> bytes:
        if bump:
            self.snapshot.signed.version += 1
        data = self.sign(self.snapshot, self.signers["snapshot"])
        self.write(self._role_file("snapshot", self.snapshot.signed.version), data)
        if hashes:
            self.timestamp.signed.snapshot_meta = MetaFile(
                version=self.snapshot.signed.version,
                length=len(data),
                hashes={"sha256": hashlib.sha256(data).hexdigest()},
            )
        else:
            self.timestamp.signed.snapshot_meta = MetaFile(version=self.snapshot.signed.version)
        return data

    def publish_timestamp(self, bump: bool = True) -> bytes:
        if bump:
            self.timestamp.signed.version += 1
        data = self.sign(self.timestamp, self.signers["timestamp"])
        self.write("timestamp.json", data)
        return data

    def publish_all(self, roles: list[str] | None = None) -> None:
        """Bumps and publishes the given targets roles (default: all), then snapshot and timestamp."""
        for role in roles if roles is not None else ["targets", *self.delegated]:
            self.publish_targets(role)
        self.publish_snapshot()
        self.publish_timestamp()

    # -- targets and delegations -------------------------------------------------------------
    def add_target(self, path: str, data: bytes, role: str = "targets") -> TargetFile:
        tf = TargetFile.from_data(path, data, ["sha256"])
        self.targets_md(role).signed.targets[path] = tf
        self.write_target_file(path, data, tf.hashes["sha256"])
        return tf

    def write_target_file(self, path: str, data: bytes, digest: str) -> None:
        d, _, base = path.rpartition("/")
        name = f"{d}/{digest}.{base}" if d else f"{digest}.{base}"
        if not self.root.signed.consistent_snapshot:
            name = path
        p = self.tdir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def delegate(
        self,
        parent: str,
        name: str,
        paths: list[str] | None = None,
        terminating: bool = False,
        signer: Signer | None = None,
        path_hash_prefixes: list[str] | None = None,
    ) -> None:
        signer = signer or new_signer(self.keytype)
        pmd = self.targets_md(parent).signed
        if pmd.delegations is None:
            pmd.delegations = Delegations(keys={}, roles={})
        role = DelegatedRole(name, [], 1, terminating, paths=paths, path_hash_prefixes=path_hash_prefixes)
        pmd.delegations.roles[name] = role
        pmd.add_key(signer.public_key, name)
        self.signers[name] = [signer]
        if name not in self.delegated:
            self.delegated[name] = Metadata(Targets(expires=in_days(30)))

    def delegate_succinct(self, bit_length: int, prefix: str) -> list[str]:
        signer = new_signer(self.keytype)
        sr = SuccinctRoles([], 1, bit_length, prefix)
        self.targets.signed.delegations = Delegations(keys={}, succinct_roles=sr)
        self.targets.signed.add_key(signer.public_key)
        names = list(sr.get_roles())
        for n in names:
            self.signers[n] = [signer]
            self.delegated[n] = Metadata(Targets(expires=in_days(30)))
        return names

    # -- raw tampering helpers -------------------------------------------------------------
    def raw(self, md: Metadata, signers: list[Signer]) -> dict:
        self.sign(md, signers)
        return md.to_dict()

    def initial_root(self) -> bytes:
        return (self.mdir / "1.root.json").read_bytes()


class Client:
    """Runs vigil-tuf-client with its own metadata and target directories, and beside it
    the reference client (python-tuf's ngclient) on a twin pair of directories, so every
    test also checks that both clients reach the same accept/reject decision."""

    def __init__(self, binary: str, workdir: Path, repo: Repo) -> None:
        self.binary = binary
        self.repo = repo
        self.metadata_dir = workdir / "client-metadata"
        self.target_dir = workdir / "client-targets"
        self.ref_metadata_dir = workdir / "reference-metadata"
        self.ref_target_dir = workdir / "reference-targets"
        for d in (self.metadata_dir, self.target_dir, self.ref_metadata_dir, self.ref_target_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.last_stderr = ""
        self.ref_error: str | None = None  # None: the reference client succeeded
        self.reference_divergence: str | None = None  # set by tests where vigil is stricter on purpose

    def _run(self, *args: str) -> int:
        cmd = [self.binary, "--metadata-dir", str(self.metadata_dir), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.last_stderr = p.stderr
        return p.returncode

    def _reference(self, names: list[str] | None) -> None:
        from tuf.ngclient import Updater

        try:
            up = Updater(
                metadata_dir=str(self.ref_metadata_dir),
                metadata_base_url=self.repo.metadata_url,
                target_dir=str(self.ref_target_dir),
                target_base_url=self.repo.targets_url,
            )
            up.refresh()
            for n in names or []:
                info = up.get_targetinfo(n)
                if info is None:
                    raise LookupError(f"target {n} not found")
                if up.find_cached_target(info) is None:
                    up.download_target(info)
            self.ref_error = None
        except Exception as e:  # noqa: BLE001 - any failure is the reference's decision
            self.ref_error = f"{type(e).__name__}: {e}"

    def init(self, root: bytes | None = None) -> int:
        data = root if root is not None else self.repo.initial_root()
        (self.ref_metadata_dir / "root.json").write_bytes(data)
        path = self.metadata_dir.parent / "initial-root.json"
        path.write_bytes(data)
        return self._run("init", str(path))

    def refresh(self) -> int:
        self._reference(None)
        return self._run("--metadata-url", self.repo.metadata_url, "refresh")

    def download(self, *names: str) -> int:
        self._reference(list(names))
        args = ["--metadata-url", self.repo.metadata_url]
        for n in names:
            args += ["--target-name", n]
        args += ["--target-base-url", self.repo.targets_url, "--target-dir", str(self.target_dir), "download"]
        return self._run(*args)

    def trusted(self, role: str) -> dict | None:
        p = self.metadata_dir / f"{role}.json"
        if not p.exists():
            return None
        return json.loads(p.read_bytes())

    def trusted_version(self, role: str) -> int | None:
        d = self.trusted(role)
        return None if d is None else d["signed"]["version"]

    def target(self, name: str) -> bytes | None:
        from urllib.parse import quote

        p = self.target_dir / quote(name, safe="")
        return p.read_bytes() if p.exists() else None


def dump(d: dict) -> bytes:
    return json.dumps(d, indent=1, sort_keys=True).encode()


def deep(d: dict) -> dict:
    return copy.deepcopy(d)


__all__ = ["Client", "Repo", "Server", "dump", "in_days", "new_signer", "os"]
