#!/usr/bin/env bash
# Wheels for `make gpu-check` on a machine that reaches no package registry (the lent GPU box).
#
#   bench/gpu_wheels.sh [PYVER] [DEST] [SET]
#     PYVER  python version of the target machine (default 3.12: the GPU box's /opt/torch/.venv)
#     DEST   where the wheels go (default .whl, git-ignored; carried with `carry: [".whl"]`)
#     SET    "device" (default): only what the GPU box lacks (see the device's KINDS.md list:
#            it has torch, numpy, safetensors, opencv-python-headless, pillow, pyyaml, tifffile,
#            scikit-image, pytest, typing-extensions);
#            "mimic": also those, for a bare venv here (torch + numpy + safetensors) that plays
#            the GPU box in the CPU dry run.
#
# Versions are pinned to what the project's tests run with, so the GPU box runs the same code
# paths. --no-deps: the lists below are the whole closure of daemon.pipeline.stages,
# daemon.config, daemon.pipeline.batch and tests/conftest.py beyond what the box has (found by
# importing them in a venv holding only torch, numpy, safetensors and these). Left out on purpose:
# imagecodecs (26 MB, only PSD/PSB reading imports it, not gpu-check's JPEG → PNG path) so that
# the wheels (~8 MB) leave room beside the checkout for one 42 MiB half of the fp16 weights;
# add it with EXTRA="imagecodecs==2026.3.6" when that room is not needed.
set -euo pipefail
PYVER="${1:-3.12}"
DEST="${2:-.whl}"
SET="${3:-device}"

DEVICE_MISSING=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 structlog==26.1.0
  isal==1.9.1 zlib-ng==1.1.0
  watchdog==7.1.0
  pillow-heif==1.8.1
)
ON_DEVICE_ALREADY=(
  pyyaml==6.0.4 pillow==13.0.0 tifffile==2026.3.3
  opencv-python-headless==5.0.0.93 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.4
  scikit-image==0.26.0 lazy-loader==0.6 scipy==1.17.1 imageio==2.38.1 pygments==2.21.0
)
packages=("${DEVICE_MISSING[@]}")
# shellcheck disable=SC2206  # EXTRA is a space-separated list of pins on purpose
if [[ -n "${EXTRA:-}" ]]; then packages+=(${EXTRA}); fi
if [[ "$SET" == mimic ]]; then packages+=("${ON_DEVICE_ALREADY[@]}"); fi

platforms=()
for n in 39 35 34 31 28 27 24 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)

mkdir -p "$DEST"
PIP="${PIP:-python3 -m pip}"
$PIP download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${platforms[@]}" -d "$DEST" "${packages[@]}"
du -ch "$DEST"/*.whl | tail -1
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
if [[ "$SET" == device && "$total" -gt $((60 * 1024 * 1024)) ]]; then
  echo "gpu_wheels: $DEST holds $((total / 1048576)) MiB, over the 60 MiB a run may carry" >&2
  exit 1
fi
