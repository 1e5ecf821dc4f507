"""vigil-tuf-client against repositories generated with python-tuf's metadata API.

Every attack test asserts exit status 1, the reason in stderr, and that the client's
trusted metadata did not move to the attacker's version.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from tufrepo import Repo, dump, in_days, new_signer
from tuf.api.metadata import MetaFile, TargetFile


def fail_with(client, rc: int, *needles: str) -> None:
    print("STDERR:", client.last_stderr.strip())
    assert rc == 1, f"expected failure, got rc={rc}; stderr={client.last_stderr!r}"
    for n in needles:
        assert n in client.last_stderr, f"{n!r} not in stderr: {client.last_stderr!r}"
    if client.reference_divergence is None:
        assert client.ref_error is not None, "python-tuf's ngclient accepted what vigil refused"
    else:
        print("reference divergence:", client.reference_divergence, "| reference:", client.ref_error)


def ok(client, rc: int) -> None:
    assert rc == 0, f"expected success; stderr={client.last_stderr!r}"
    if client.reference_divergence is None:
        assert client.ref_error is None, f"python-tuf's ngclient refused what vigil accepted: {client.ref_error}"
    else:
        print("reference divergence:", client.reference_divergence, "| reference:", client.ref_error)


# --------------------------------------------------------------------------------------
# happy paths


def test_init_copies_root_without_network(repo, make_client):
    c = make_client(repo)
    before = len(repo.requests())
    ok(c, c.init())
    assert (c.metadata_dir / "root.json").read_bytes() == repo.initial_root()
    assert len(repo.requests()) == before
    missing = c.metadata_dir.parent / "nope.json"
    assert c._run("init", str(missing)) == 1


def test_refresh_stores_top_level_metadata(repo, client):
    ok(client, client.refresh())
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert client.trusted(role) is not None, role
    assert client.trusted_version("timestamp") == repo.timestamp.signed.version
    assert client.trusted_version("snapshot") == repo.snapshot.signed.version
    assert client.trusted_version("targets") == repo.targets.signed.version
    assert not any(p.name[0].isdigit() for p in client.metadata_dir.iterdir()), "non-versioned names only"


def test_download_verifies_stores_and_caches(repo, client):
    repo.add_target("models/detector.vplan", b"model-bytes-v1")
    repo.add_target("readme.txt", b"hello")
    repo.publish_all()
    ok(client, client.download("models/detector.vplan", "readme.txt"))
    assert client.target("models/detector.vplan") == b"model-bytes-v1"
    assert client.target("readme.txt") == b"hello"
    target_reqs = [r for r in repo.requests() if r.startswith("targets/")]
    assert len(target_reqs) == 2
    # Already present with matching hashes: not fetched again.
    ok(client, client.download("models/detector.vplan"))
    assert len([r for r in repo.requests() if r.startswith("targets/")]) == 2
    # Content changed upstream: same file name, new content.
    repo.add_target("models/detector.vplan", b"model-bytes-v2")
    repo.publish_all()
    ok(client, client.download("models/detector.vplan"))
    assert client.target("models/detector.vplan") == b"model-bytes-v2"


def test_download_stops_at_first_failure(repo, client):
    repo.add_target("a.txt", b"a")
    repo.add_target("c.txt", b"c")
    repo.publish_all()
    fail_with(client, client.download("a.txt", "missing.txt", "c.txt"), "not found")
    assert client.target("a.txt") == b"a"
    assert client.target("c.txt") is None


@pytest.mark.parametrize("consistent", [True, False])
def test_consistent_snapshot_file_names(make_repo, make_client, consistent):
    repo = make_repo(consistent_snapshot=consistent)
    data = b"payload"
    repo.add_target("dir/file.bin", data)
    repo.publish_all()
    c = make_client(repo)
    ok(c, c.init())
    ok(c, c.download("dir/file.bin"))
    assert c.target("dir/file.bin") == data
    reqs = repo.requests()
    digest = hashlib.sha256(data).hexdigest()
    sv, tv = repo.snapshot.signed.version, repo.targets.signed.version
    if consistent:
        assert f"metadata/{sv}.snapshot.json" in reqs
        assert f"metadata/{tv}.targets.json" in reqs
        assert f"targets/dir/{digest}.file.bin" in reqs
    else:
        assert "metadata/snapshot.json" in reqs
        assert "metadata/targets.json" in reqs
        assert "targets/dir/file.bin" in reqs
    assert "metadata/2.root.json" in reqs  # roots are always fetched by version


@pytest.mark.parametrize("keytype", ["ecdsa", "rsa-pss", "rsa-pkcs1"])
def test_key_types(make_repo, make_client, keytype):
    repo = make_repo(keytype=keytype)
    repo.add_target("t.bin", b"x" * 100)
    repo.publish_all()
    c = make_client(repo)
    ok(c, c.init())
    ok(c, c.download("t.bin"))
    assert c.target("t.bin") == b"x" * 100
    # A signature by a different key of the same type is refused.
    repo.signers["timestamp"] = [new_signer(keytype)]
    repo.publish_timestamp()
    fail_with(c, c.refresh(), "timestamp: signature threshold not met")


# --------------------------------------------------------------------------------------
# root rotation


def test_root_rotation_with_threshold_change(repo, client):
    ok(client, client.refresh())
    k2, k3 = new_signer(), new_signer()
    # v2: two new root keys, threshold 2; signed by the old key (old threshold) and both new keys.
    repo.rotate_root(lambda r: r.replace_keys("root", [k2, k3], threshold=2))
    # v3: signed by the new keys only.
    repo.rotate_root()
    repo.publish_all()
    ok(client, client.refresh())
    assert client.trusted_version("root") == 3
    assert client.trusted("root")["signed"]["roles"]["root"]["threshold"] == 2


def test_root_rotation_needs_old_threshold(repo, client):
    ok(client, client.refresh())
    repo.rotate_root(lambda r: r.replace_keys("root", [new_signer()]), sign_with_old=False)
    fail_with(client, client.refresh(), "root (by the trusted root's keys): signature threshold not met")
    assert client.trusted_version("root") == 1


def test_root_rotation_needs_new_threshold(repo, client):
    ok(client, client.refresh())
    k2, k3 = new_signer(), new_signer()
    repo.rotate_root(lambda r: r.replace_keys("root", [k2, k3], threshold=2))
    repo.publish_all()
    ok(client, client.refresh())
    # v3 moves to keys k4, k5 (threshold 2): signed by both old keys but only one new key.
    k4, k5 = new_signer(), new_signer()
    repo.root.signed.version += 1
    repo.replace_keys("root", [k4, k5], threshold=2)
    repo.write("3.root.json", repo.sign(repo.root, [k2, k3, k4]))
    fail_with(client, client.refresh(), "root (by its own keys): signature threshold not met", "1 of 2")
    assert client.trusted_version("root") == 2


def test_root_version_must_be_consecutive(repo, client):
    repo.root.signed.version = 3
    repo.write("2.root.json", repo.sign(repo.root, repo.signers["root"]))
    fail_with(client, client.refresh(), "root version mismatch", "expected version 2")


def test_intermediate_root_may_be_expired_final_may_not(repo, client):
    repo.root.signed.expires = in_days(-1)
    repo.rotate_root()  # v2 expired
    repo.root.signed.expires = in_days(365)
    repo.rotate_root()  # v3 fine
    repo.publish_all()
    ok(client, client.refresh())
    assert client.trusted_version("root") == 3
    repo.root.signed.expires = in_days(-1)
    repo.rotate_root()  # v4 expired and final
    fail_with(client, client.refresh(), "root expired")


# --------------------------------------------------------------------------------------
# rollback and freeze


def test_timestamp_rollback(repo, client):
    ok(client, client.refresh())
    trusted = client.trusted_version("timestamp")
    repo.timestamp.signed.version -= 1
    repo.publish_timestamp(bump=False)
    fail_with(client, client.refresh(), "timestamp rollback", f"lower than trusted version {trusted}")
    assert client.trusted_version("timestamp") == trusted


def test_snapshot_version_rollback_in_timestamp(repo, client):
    ok(client, client.refresh())
    old_meta = MetaFile(version=repo.snapshot.signed.version - 1)
    repo.publish_snapshot()
    repo.timestamp.signed.snapshot_meta = old_meta
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "snapshot version in timestamp rollback")


def test_targets_rollback_in_snapshot(repo, client):
    ok(client, client.refresh())
    repo.snapshot.signed.meta["targets.json"] = MetaFile(version=repo.targets.signed.version - 1)
    repo.publish_snapshot()
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "targets.json version in snapshot rollback")
    assert client.trusted_version("targets") == repo.targets.signed.version


def test_delegated_targets_rollback_in_snapshot(repo, client):
    repo.delegate("targets", "A", paths=["*"])
    repo.add_target("a.txt", b"a", role="A")
    repo.publish_all()
    repo.publish_all(roles=["A"])
    ok(client, client.download("a.txt"))
    trusted_a = client.trusted_version("A")
    assert trusted_a == repo.delegated["A"].signed.version
    repo.snapshot.signed.meta["A.json"] = MetaFile(version=trusted_a - 1)
    repo.publish_snapshot()
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "A.json version in snapshot rollback")


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_expired_metadata_is_refused(repo, client, role):
    ok(client, client.refresh())
    md = {"timestamp": repo.timestamp, "snapshot": repo.snapshot, "targets": repo.targets}[role]
    md.signed.expires = in_days(-1)
    before = client.trusted_version(role)
    repo.publish_all()
    fail_with(client, client.refresh(), f"{role} expired")
    assert client.trusted_version(role) == before


def test_expired_new_timestamp_is_not_trusted(repo, client):
    # A newer but expired timestamp is refused and not stored; the stored one stays.
    ok(client, client.refresh())
    old = repo.sign(repo.timestamp, repo.signers["timestamp"])
    repo.timestamp.signed.expires = in_days(-1)
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "timestamp expired")
    repo.write("timestamp.json", old)  # the version the client still trusts
    ok(client, client.refresh())  # equal to the stored version: kept
    assert client.trusted_version("timestamp") == json.loads(old)["signed"]["version"]


# --------------------------------------------------------------------------------------
# signatures and thresholds


def test_wrong_key_signature(repo, client):
    ok(client, client.refresh())
    repo.signers["snapshot"] = [new_signer()]
    repo.publish_all()
    fail_with(client, client.refresh(), "snapshot: signature threshold not met", "0 of 1")


def test_insufficient_signatures(repo, client):
    ok(client, client.refresh())
    k2 = new_signer()
    repo.rotate_root(lambda r: (r.add_key("timestamp", k2), setattr(r.root.signed.roles["timestamp"], "threshold", 2)))
    repo.signers["timestamp"] = [k2]  # only one of the two required
    repo.publish_all()
    fail_with(client, client.refresh(), "timestamp: signature threshold not met", "1 of 2")


def test_tampered_signed_content(repo, client):
    d = repo.raw(repo.timestamp, repo.signers["timestamp"])
    d["signed"]["version"] += 5
    repo.write("timestamp.json", dump(d))
    fail_with(client, client.refresh(), "timestamp: signature threshold not met")


def test_duplicate_signatures_do_not_inflate_threshold(repo, client):
    ok(client, client.refresh())
    k2 = new_signer()
    repo.rotate_root(lambda r: (r.add_key("snapshot", k2), setattr(r.root.signed.roles["snapshot"], "threshold", 2)))
    repo.snapshot.signed.version += 1
    d = repo.raw(repo.snapshot, repo.signers["snapshot"][:1])
    d["signatures"] = d["signatures"] * 2  # the same key's signature twice
    data = dump(d)
    repo.write(f"{repo.snapshot.signed.version}.snapshot.json", data)
    repo.timestamp.signed.snapshot_meta = MetaFile(
        version=repo.snapshot.signed.version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "snapshot: signature threshold not met", "1 of 2")


def test_one_key_under_two_keyids_counts_once(repo, client):
    ok(client, client.refresh())
    client.reference_divergence = "python-tuf counts key ids, vigil counts distinct keys"
    signer = repo.signers["timestamp"][0]
    key = signer.public_key
    alias = json.loads(json.dumps(key.to_dict()))
    alias_id = "ab" * 32

    # Root v2 lists the timestamp key twice, under its own id and an alias; threshold 2.
    repo.root.signed.version += 1
    rd = repo.raw(repo.root, repo.signers["root"])
    rd["signed"]["keys"][alias_id] = alias
    rd["signed"]["roles"]["timestamp"]["keyids"].append(alias_id)
    rd["signed"]["roles"]["timestamp"]["threshold"] = 2
    from tuf.api.metadata import Metadata

    md = Metadata.from_dict(json.loads(json.dumps(rd)))
    raw = repo.sign(md, repo.signers["root"])
    repo.write("2.root.json", raw)
    repo.root = Metadata.from_bytes(raw)

    repo.timestamp.signed.version += 1
    td = repo.raw(repo.timestamp, [signer])
    td["signatures"].append({"keyid": alias_id, "sig": td["signatures"][0]["sig"]})
    repo.write("timestamp.json", dump(td))
    fail_with(client, client.refresh(), "timestamp: signature threshold not met", "duplicate of a key already counted")


# --------------------------------------------------------------------------------------
# mix-and-match


def test_snapshot_hash_mismatch(repo, client):
    ok(client, client.refresh())
    repo.publish_snapshot()
    meta = repo.timestamp.signed.snapshot_meta
    meta.hashes = {"sha256": "00" * 32}
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "snapshot.json", "sha256 hash mismatch")


def test_snapshot_version_differs_from_timestamp(repo, client):
    ok(client, client.refresh())
    v = repo.snapshot.signed.version
    repo.publish_snapshot(hashes=False)  # v+1 published
    # Timestamp claims v+2 but the (unversioned lookup in consistent mode) file is v+1.
    repo.write(f"{v + 2}.snapshot.json", (repo.mdir / f"{v + 1}.snapshot.json").read_bytes())
    repo.timestamp.signed.snapshot_meta = MetaFile(version=v + 2)
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "snapshot version mismatch", f"expected version {v + 2}")


def test_targets_version_differs_from_snapshot(repo, client):
    ok(client, client.refresh())
    tv = repo.targets.signed.version
    repo.publish_targets()  # tv+1
    repo.write(f"{tv + 2}.targets.json", (repo.mdir / f"{tv + 1}.targets.json").read_bytes())
    repo.snapshot.signed.meta["targets.json"] = MetaFile(version=tv + 2)
    repo.publish_snapshot()
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "targets version mismatch", "snapshot says so")


def test_snapshot_may_not_drop_a_role(repo, client):
    ok(client, client.refresh())
    del repo.snapshot.signed.meta["targets.json"]
    repo.publish_snapshot()
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "drops \"targets.json\"")


# --------------------------------------------------------------------------------------
# endless data


def test_oversized_timestamp(repo, client):
    repo.timestamp.signed.version += 1
    d = repo.raw(repo.timestamp, repo.signers["timestamp"])
    d["padding"] = "x" * 20_000
    repo.write("timestamp.json", dump(d))
    fail_with(client, client.refresh(), "timestamp.json: data exceeds the maximum length of 16384 bytes")


def test_endless_snapshot_stream(repo, client):
    ok(client, client.refresh())
    repo.publish_snapshot()
    repo.publish_timestamp()
    repo.server.endless.add(f"/{repo.name}/metadata/{repo.snapshot.signed.version}.snapshot.json")
    fail_with(client, client.refresh(), "snapshot.json: data exceeds the maximum length")


def test_target_longer_than_stated(repo, client):
    tf = repo.add_target("big.bin", b"0123456789")
    repo.publish_all()
    repo.write_target_file("big.bin", b"0123456789" * 1000, tf.hashes["sha256"])
    fail_with(client, client.download("big.bin"), "data exceeds the maximum length of 10 bytes")
    assert client.target("big.bin") is None


def test_endless_target_stream(repo, client):
    tf = repo.add_target("stream.bin", b"abc")
    repo.publish_all()
    repo.server.endless.add(f"/{repo.name}/targets/{tf.hashes['sha256']}.stream.bin")
    fail_with(client, client.download("stream.bin"), "data exceeds the maximum length of 3 bytes")


# --------------------------------------------------------------------------------------
# tampered targets


def test_tampered_target(repo, client):
    tf = repo.add_target("model.vplan", b"good model!")
    repo.publish_all()
    repo.write_target_file("model.vplan", b"evil model!", tf.hashes["sha256"])
    fail_with(client, client.download("model.vplan"), "target \"model.vplan\"", "sha256 hash mismatch")
    assert client.target("model.vplan") is None


def test_cached_target_with_wrong_hash_is_replaced(repo, client):
    repo.add_target("m.bin", b"right")
    repo.publish_all()
    from urllib.parse import quote

    (client.target_dir / quote("m.bin", safe="")).write_bytes(b"wrong")
    ok(client, client.download("m.bin"))
    assert client.target("m.bin") == b"right"


# --------------------------------------------------------------------------------------
# fast-forward attack recovery


def test_fast_forward_recovery_after_timestamp_key_rotation(repo, client):
    # An attacker with the timestamp key pushed timestamp to version 1000.
    repo.timestamp.signed.version = 999
    repo.publish_timestamp()
    ok(client, client.refresh())
    assert client.trusted_version("timestamp") == 1000
    # Recovery: rotate the timestamp key in root and restart timestamp versions.
    repo.rotate_root(lambda r: r.replace_keys("timestamp", [new_signer()]))
    repo.timestamp.signed.version = 0
    repo.publish_timestamp()
    ok(client, client.refresh())
    assert client.trusted_version("timestamp") == 1
    assert client.trusted_version("root") == 2


def test_fast_forward_without_rotation_is_rollback(repo, client):
    repo.timestamp.signed.version = 999
    repo.publish_timestamp()
    ok(client, client.refresh())
    repo.timestamp.signed.version = 0
    repo.publish_timestamp()
    fail_with(client, client.refresh(), "timestamp rollback")


def test_fast_forward_recovery_after_snapshot_key_rotation(repo, client):
    repo.snapshot.signed.version = 499
    repo.publish_snapshot()
    repo.publish_timestamp()
    ok(client, client.refresh())
    assert client.trusted_version("snapshot") == 500
    # Spec 5.3.11 deletes the trusted timestamp and snapshot when snapshot keys rotate.
    # python-tuf's ngclient deliberately does not (it keeps the timestamp, whose key did
    # not change, and so refuses the reset snapshot version until the timestamp key
    # rotates too): here vigil follows the specification text.
    client.reference_divergence = "spec 5.3.11 recovery on snapshot-key rotation alone"
    repo.rotate_root(lambda r: r.replace_keys("snapshot", [new_signer()]))
    repo.snapshot.signed.version = 0
    repo.publish_snapshot()
    repo.publish_timestamp()
    ok(client, client.refresh())
    assert client.trusted_version("snapshot") == 1


# --------------------------------------------------------------------------------------
# delegations


def test_delegation_terminating_and_order(repo, client):
    repo.delegate("targets", "A", paths=["files/*"], terminating=True)
    repo.delegate("targets", "B", paths=["files/*"])
    repo.add_target("files/in-a.txt", b"from A", role="A")
    repo.add_target("files/in-b.txt", b"from B", role="B")
    repo.publish_all()
    ok(client, client.download("files/in-a.txt"))
    assert client.target("files/in-a.txt") == b"from A"
    assert client.trusted_version("A") is not None
    # A is terminating for files/*: B is never consulted.
    fail_with(client, client.download("files/in-b.txt"), "not found")
    assert client.trusted_version("B") is None


def test_delegation_non_terminating_falls_through(repo, client):
    repo.delegate("targets", "A", paths=["files/*"])
    repo.delegate("targets", "B", paths=["files/*"])
    repo.add_target("files/in-b.txt", b"from B", role="B")
    repo.publish_all()
    ok(client, client.download("files/in-b.txt"))
    assert client.target("files/in-b.txt") == b"from B"


def test_delegation_paths_restrict(repo, client):
    repo.delegate("targets", "A", paths=["models/*.vplan"])
    repo.add_target("firmware/x.bin", b"sneaky", role="A")
    repo.publish_all()
    fail_with(client, client.download("firmware/x.bin"), "not found")


def test_delegation_hash_prefixes(repo, client):
    path = "bins/t.txt"
    prefix = hashlib.sha256(path.encode()).hexdigest()[:2]
    repo.delegate("targets", "bin-hit", path_hash_prefixes=[prefix])
    repo.add_target(path, b"binned", role="bin-hit")
    repo.publish_all()
    ok(client, client.download(path))
    assert client.target(path) == b"binned"


def test_succinct_hash_bins(repo, client):
    names = repo.delegate_succinct(bit_length=4, prefix="bin")
    path = "succinct/target.txt"
    bin_name = repo.targets.signed.delegations.succinct_roles.get_role_for_target(path)
    assert bin_name in names
    repo.add_target(path, b"in a bin", role=bin_name)
    repo.publish_all()
    ok(client, client.download(path))
    assert client.target(path) == b"in a bin"


def test_delegated_role_signed_by_wrong_key(repo, client):
    repo.delegate("targets", "A", paths=["*"])
    repo.add_target("x", b"x", role="A")
    repo.signers["A"] = [new_signer()]
    repo.publish_all()
    fail_with(client, client.download("x"), "A: signature threshold not met")


@pytest.mark.parametrize("depth,found", [(5, True), (40, False)])
def test_delegation_depth_bound(repo, client, depth, found):
    parent = "targets"
    for i in range(depth):
        name = f"d{i}"
        repo.delegate(parent, name, paths=["deep/*"])
        parent = name
    repo.add_target("deep/t.txt", b"deep", role=parent)
    repo.publish_all()
    rc = client.download("deep/t.txt")
    if found:
        ok(client, rc)
        assert client.target("deep/t.txt") == b"deep"
    else:
        fail_with(client, rc, "not found")
        visited = [r for r in repo.requests() if r.startswith("metadata/") and ".d" in r]
        assert len(visited) <= 32, visited


def test_delegation_cycle_terminates(repo, client):
    repo.delegate("targets", "A", paths=["*"])
    repo.delegate("A", "B", paths=["*"])
    # B delegates back to A: the search must not loop.
    signer_a = repo.signers["A"][0]
    repo.delegate("B", "A", paths=["*"], signer=signer_a)
    repo.publish_all()
    fail_with(client, client.download("nothing"), "not found")


# --------------------------------------------------------------------------------------
# malformed metadata


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d["signed"].__setitem__("_type", "snapshot"), "wrong metadata type"),
        (lambda d: d["signed"].__setitem__("expires", "tomorrow"), "expires"),
        (lambda d: d["signed"].__setitem__("spec_version", "2.0.0"), "unsupported spec_version"),
        (lambda d: d["signed"].__setitem__("version", 0), "version"),
        (lambda d: d.pop("signatures"), "signatures"),
    ],
)
def test_malformed_timestamp(repo, client, mutate, needle):
    d = repo.raw(repo.timestamp, repo.signers["timestamp"])
    mutate(d)
    repo.write("timestamp.json", dump(d))
    fail_with(client, client.refresh(), needle)


def test_missing_repository(repo, client):
    (repo.mdir / "timestamp.json").unlink()
    fail_with(client, client.refresh(), "timestamp.json", "not found")


def test_target_info_custom_survives(repo, client):
    tf = TargetFile.from_data("c.bin", b"c", ["sha256", "sha512"])
    tf.unrecognized_fields["custom"] = {"tier": {"accelerator": "cuda"}}
    repo.targets.signed.targets["c.bin"] = tf
    repo.write_target_file("c.bin", b"c", tf.hashes["sha256"])
    repo.publish_all()
    ok(client, client.download("c.bin"))
    assert client.target("c.bin") == b"c"


def test_unicode_and_escapes_in_signed_content(repo, client):
    name = 'naïve "quoted" \\ path.txt'
    repo.add_target(name, b"u")
    repo.publish_all()
    ok(client, client.download(name))
    assert client.target(name) == b"u"


__all__ = ["Repo"]
