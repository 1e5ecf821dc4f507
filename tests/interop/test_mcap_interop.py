"""Interoperability of vigil recordings with the official Python `mcap` package.

* `vigil record` output is read back with `mcap.reader`: channels, schemas, message counts,
  and messages decoded (ground-truth JSON, image and calibration protobuf).
* A log written by another tool (`mcap.writer`, lz4 chunks, its own chunking) is replayed
  by `vigil replay`, which must find its cameras, frame counts and the gap we put in it.

The binary comes from $VIGIL_BIN (default: target/debug/vigil); the tests skip, saying
why, when it does not exist.
"""

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

mcap_reader = pytest.importorskip("mcap.reader", reason="the Python `mcap` package is not installed (scripts/setup-test-deps.sh installs it)")
from mcap.writer import CompressionType, Writer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 72  # 2 s at 36 fps


@pytest.fixture(scope="module")
def vigil():
    path = Path(os.environ.get("VIGIL_BIN", ROOT / "target" / "debug" / "vigil"))
    if not path.exists():
        pytest.skip(f"vigil binary not found at {path}: build it (cargo build) or set VIGIL_BIN")
    return path


def run(vigil, *args, check=True):
    p = subprocess.run([str(vigil), *map(str, args)], capture_output=True, text=True, env={**os.environ, "VIGIL_LOG": "warn"})
    if check and p.returncode != 0:
        raise AssertionError(f"vigil {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p


@pytest.fixture(scope="module")
def recording(vigil, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "a.mcap"
    run(vigil, "record", "synthetic", "--seconds", "2", "--seed", "7", "--out", out)
    return out


def protobuf_fields(buf):
    """Minimal protobuf wire-format parser: {field number: [values]} (varint, fixed64, bytes, fixed32)."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(val)
    return fields


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def enc_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def enc_field(num, wire, payload):
    key = enc_varint(num << 3 | wire)
    if wire == 2:
        return key + enc_varint(len(payload)) + payload
    return key + payload


def raw_image(ts_ns, frame_id, width, height, rgb):
    """foxglove.RawImage, protobuf, encoded by hand (rgb8)."""
    stamp = enc_field(1, 0, enc_varint(ts_ns // 1_000_000_000)) + enc_field(2, 0, enc_varint(ts_ns % 1_000_000_000))
    return b"".join([
        enc_field(1, 2, stamp),
        enc_field(2, 5, struct.pack("<I", width)),
        enc_field(3, 5, struct.pack("<I", height)),
        enc_field(4, 2, b"rgb8"),
        enc_field(5, 5, struct.pack("<I", width * 3)),
        enc_field(6, 2, rgb),
        enc_field(7, 2, frame_id.encode()),
    ])


def test_channels_schemas_and_counts(recording):
    with open(recording, "rb") as f:
        reader = mcap_reader.make_reader(f)
        summary = reader.get_summary()
        header = reader.get_header()
    assert header.library.startswith("vigil ")
    channels = summary.channels.values()
    schemas = summary.schemas
    images = [c for c in channels if c.topic.startswith("/camera/") and c.topic.endswith("/image")]
    calibs = [c for c in channels if c.topic.startswith("/camera/") and c.topic.endswith("/calibration")]
    assert len(images) == 8, [c.topic for c in channels]
    assert len(calibs) == 8
    for c in images:
        assert schemas[c.schema_id].name == "foxglove.CompressedImage"
        assert schemas[c.schema_id].encoding == "protobuf" and c.message_encoding == "protobuf"
    for c in calibs:
        assert schemas[c.schema_id].name == "foxglove.CameraCalibration"
    by_topic = {c.topic: c for c in channels}
    gt = by_topic["/ground_truth"]
    assert schemas[gt.schema_id].name == "vigil.GroundTruth"
    assert schemas[gt.schema_id].encoding == "jsonschema" and gt.message_encoding == "json"
    assert json.loads(schemas[gt.schema_id].data)["title"] == "vigil.GroundTruth"
    assert schemas[by_topic["/ego_pose"].schema_id].name == "foxglove.PoseInFrame"
    assert schemas[by_topic["/tf"].schema_id].name == "foxglove.FrameTransforms"
    counts = summary.statistics.channel_message_counts
    for c in channels:
        assert counts[c.id] == FRAMES, c.topic
    assert summary.statistics.message_count == FRAMES * (8 * 2 + 3)


def test_messages_decode(recording):
    with open(recording, "rb") as f:
        reader = mcap_reader.make_reader(f)
        calib, image, truth = {}, {}, []
        for schema, channel, message in reader.iter_messages():
            if channel.topic == "/ground_truth":
                truth.append((message.log_time, json.loads(message.data)))
            elif channel.topic.endswith("/calibration") and channel.topic not in calib:
                calib[channel.topic] = protobuf_fields(message.data)
            elif channel.topic.endswith("/image") and channel.topic not in image:
                image[channel.topic] = protobuf_fields(message.data)
    assert [t["frame"] for _, t in truth] == list(range(FRAMES))
    for log_time, t in truth:
        assert t["timestamp_ns"] == log_time
        # Every field the documented schema requires, and nothing else.
        schema = json.loads((Path(__file__).resolve().parents[2] / "pipeline/schemas/vigil.GroundTruth.schema.json").read_text())
        assert set(t) == set(schema["required"])
    assert len(image) == 8
    for topic, fields in image.items():
        assert fields[3] == [b"png"]
        png = fields[2][0]
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])  # IHDR
        cal = calib[topic.replace("/image", "/calibration")]
        assert (width, height) == (struct.unpack("<I", cal[2][0])[0], struct.unpack("<I", cal[3][0])[0])
        k = [struct.unpack("<d", v)[0] for v in cal[6]] if 6 in cal and len(cal[6]) == 9 else None
        if k is None:  # packed repeated doubles
            k = list(struct.unpack("<9d", cal[6][0]))
        assert k[8] == 1.0 and k[0] > 0 and k[4] > 0


def raw_image_schema(vigil, tmp_path):
    """The foxglove.RawImage protobuf descriptor, taken from a one-frame raw recording."""
    out = tmp_path / "raw.mcap"
    run(vigil, "record", "synthetic", "--seconds", "0.03", "--images", "raw", "--out", out)
    with open(out, "rb") as f:
        summary = mcap_reader.make_reader(f).get_summary()
    (schema,) = [s for s in summary.schemas.values() if s.name == "foxglove.RawImage"]
    return schema.data


def test_replay_reads_a_log_written_by_another_tool(vigil, tmp_path):
    descriptor = raw_image_schema(vigil, tmp_path)
    path = tmp_path / "other.mcap"
    w, h = 16, 8
    with open(path, "wb") as f:
        writer = Writer(f, compression=CompressionType.LZ4, chunk_size=2048)
        writer.start(profile="", library="python mcap test")
        sid = writer.register_schema(name="foxglove.RawImage", encoding="protobuf", data=descriptor)
        chans = {name: writer.register_channel(topic=f"/camera/{name}/image", message_encoding="protobuf", schema_id=sid)
                 for name in ("left", "right")}
        period = 50_000_000  # 20 fps
        for i in range(6):
            for k, (name, cid) in enumerate(chans.items()):
                if name == "right" and i == 3:
                    continue  # a lost frame: missing sequence 3, a timestamp jump
                t = 1_000_000_000 + i * period
                rgb = bytes((i * 10 + k + p) % 256 for p in range(w * h * 3))
                writer.add_message(channel_id=cid, log_time=t, publish_time=t, sequence=i,
                                   data=raw_image(t, f"camera_{name}", w, h, rgb))
        writer.finish()
    p = run(vigil, "replay", path, "--json")
    report = json.loads(p.stdout)
    cams = {c["name"]: c for c in report["cameras"]}
    assert set(cams) == {"left", "right"}
    assert (cams["left"]["messages"], cams["right"]["messages"]) == (6, 5)
    assert (cams["left"]["width"], cams["left"]["height"]) == (w, h)
    assert cams["left"]["staged"] == 6 and cams["right"]["staged"] == 5
    assert (cams["left"]["missing_sequences"], cams["right"]["missing_sequences"]) == (0, 1)
    assert (cams["left"]["timestamp_jumps"], cams["right"]["timestamp_jumps"]) == (0, 1)
    assert cams["left"]["period_ns"] == period
    assert report["complete"] and report["problems"] == []
    assert report["chunks"] > 1


def test_replay_names_the_offset_of_a_corrupt_python_log(vigil, tmp_path):
    path = tmp_path / "bad.mcap"
    with open(path, "wb") as f:
        writer = Writer(f, compression=CompressionType.NONE)
        writer.start()
        sid = writer.register_schema(name="foxglove.RawImage", encoding="protobuf", data=b"")
        cid = writer.register_channel(topic="/camera/x/image", message_encoding="protobuf", schema_id=sid)
        for i in range(3):
            writer.add_message(channel_id=cid, log_time=i, publish_time=i, sequence=i, data=raw_image(i, "x", 4, 4, bytes(48)))
        writer.finish()
    data = bytearray(path.read_bytes())
    pixels = data.find(bytes(48))  # the first image's pixels, inside the (uncompressed) chunk
    assert pixels > 0
    data[pixels + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    p = run(vigil, "replay", path, check=False)
    assert p.returncode not in (0, 101), p.stderr
    assert "byte offset" in p.stderr and "CRC" in p.stderr and "panicked" not in p.stderr, p.stderr
