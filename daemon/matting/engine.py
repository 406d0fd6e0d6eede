"""Running the model: device and precision choice, pre-processing, batched inference."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from daemon.config import Precision, precision_problem
from daemon.errors import ConfigError, DeviceOutOfMemory, WeightsError
from daemon.matting.registry import DEFAULT_MODEL, build_model
from daemon.matting.weights import load_state_dict, resolve_weights_dir

#: GPU memory one 1024² fp16 image needs in a batch, with headroom. An estimate, NOT measured (no
#: GPU was lent when this was written): the largest activations are 64 × 512² fp16 maps (32 MiB)
#: and a few dozen are alive at once; correct it from the first GPU run of bench/throughput.py.
CUDA_BYTES_PER_IMAGE_1024 = 768 << 20
MAX_AUTO_BATCH = 16


def choose_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise WeightsError("device: cuda was asked for, but torch sees no CUDA device")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def default_precision(device: torch.device) -> Precision:
    """fp16 on CUDA; on the CPU bf16 autocast where it measured faster than fp32, else fp32.

    Per 1024² image on 2 cores (../shared/NOTES.md and the README, where the runs are named):

    ========================================  ==============  ===============
    cores                                     bf16            fp32
    ========================================  ==============  ===============
    Intel with AMX tiles (machine A)          0.72 s          1.57 s
    AMD Zen 5, ``avx512_bf16`` (machine D)    0.40-0.48 s     1.00-1.29 s
    Intel ``avx512_bf16``, no AMX (machine B) 2.12-2.23 s     1.39-1.79 s
    AMD, AVX2 only (machine C)                cannot run      2.37-3.25 s
    ========================================  ==============  ===============

    ``precision`` in the config overrides this.
    """
    if device.type == "cuda":
        return "fp16"
    return "bf16" if _bf16_outruns_fp32() else "fp32"


def _bf16_outruns_fp32() -> bool:
    """Whether these cores are of a kind on which bf16 convolutions measured faster than fp32."""
    if not cpu_runs_bf16():
        return False
    # Both probes are private in torch 2.13: guard them, and fall back to fp32 without them.
    has_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if has_amx is not None and has_amx():
        return True
    # AMD's cores run the bf16 dot product (VDPBF16PS) at the rate of an fp32 FMA, so twice the
    # multiply-adds per instruction; Intel's without AMX lost to fp32 as measured (machine B).
    # Measured on Zen 5 only: Zen 4 has the same instruction and is expected, not known, to gain.
    has_dot = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return has_dot is not None and has_dot() and cpu_vendor() == "AuthenticAMD"


def cpu_vendor() -> str:
    """The kernel's ``vendor_id`` for the CPU (``GenuineIntel``, ``AuthenticAMD``), or "" unknown.

    Read from /proc/cpuinfo: torch exposes the instruction sets but not the maker, and the maker
    decides here (the same bf16 instruction is fast on AMD and slower than fp32 on Intel's).
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            return line.partition(":")[2].strip()
    return ""


def cpu_runs_bf16() -> bool:
    """Whether oneDNN has bf16 convolutions on these cores: AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT.

    Elsewhere (AVX2 only: machine C, an AMD EPYC) the first bf16 convolution raises.
    """
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cores_problem(precision: Precision) -> str | None:
    """Why these CPU cores cannot run ``precision`` (bf16 on AVX2-only cores), or None."""
    if precision == "bf16" and not cpu_runs_bf16():
        return (
            "precision: bf16 needs a CPU with AVX-512 (BW, VL and DQ) or AVX-NE-CONVERT, "
            f"and this one has {torch.backends.cpu.get_cpu_capability()}; use auto or fp32"
        )
    return None


def prepare(rgb: np.ndarray, size: int) -> np.ndarray:
    """Squash an RGB ``uint8`` image to ``size``×``size``, as the model was trained.

    Runs in the decode threads so the model thread only does inference.
    """
    h, w = rgb.shape[:2]
    interpolation = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


@dataclass
class MattingEngine:
    """One model instance on one device; calls are serialised (the model and detail stages share it)."""

    model: torch.nn.Module
    device: torch.device
    precision: Precision
    size: int
    #: torch intra-op threads for the model's calls on the CPU, whichever thread makes them (the
    #: model stage's global pass, the finish's crop pass); None leaves the calling thread's count.
    cpu_threads: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        if self.cpu_threads is None or self.device.type != "cpu":
            return contextlib.nullcontext()
        return torch_threads(self.cpu_threads)

    def _to_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(images))
        if self.device.type == "cuda":
            # Page-locked memory lets the copy run asynchronously (UNMEASURED: no GPU lent so far).
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        # uint8 crosses the bus (a quarter of float32); the scaling happens on the device.
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        return batch.to(dtype=dtype).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """α (float32, ``size``×``size``, in [0, 1]) for each prepared RGB ``uint8`` image."""
        try:
            with self._lock, self._threads(), self._autocast():
                alpha = self.model(self._to_input(images))
            # Inside the try: the float copy on the device can run out of memory too.
            result = alpha.float().clamp_(0.0, 1.0).squeeze(1).cpu().numpy()
        except torch.OutOfMemoryError as exc:
            raise DeviceOutOfMemory(f"out of memory on {self.device} for a batch of {len(images)}") from exc
        return list(result)

    def predict_crops(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """α for many ``size``² crops: batched as :meth:`auto_batch_size` allows, one at a time on OOM.

        The lock is taken per batch, so the global pass of the next file is not held up for long.
        """
        batch = self.auto_batch_size()
        result: list[np.ndarray] = []
        for start in range(0, len(crops), batch):
            chunk = crops[start : start + batch]
            try:
                result += self.predict(chunk)
            except DeviceOutOfMemory:
                if len(chunk) == 1:
                    raise
                for crop in chunk:
                    result += self.predict([crop])
        return result

    def auto_batch_size(self) -> int:
        """1 on the CPU (batching does not pay there); on CUDA what half the free memory holds."""
        if self.device.type != "cuda":
            return 1
        free, _total = torch.cuda.mem_get_info(self.device)
        per_image = CUDA_BYTES_PER_IMAGE_1024 * (self.size / 1024) ** 2
        return max(1, min(MAX_AUTO_BATCH, int(free * 0.5 // per_image)))


#: The dtype the weights are stored in on each precision's device (activations follow them).
WEIGHT_DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def _build(state: dict[str, torch.Tensor], device: torch.device, precision: Precision) -> torch.nn.Module:
    # Built on the meta device and given the loaded tensors (assign=True): no random
    # initialisation of 44 M parameters that the weights overwrite at once, and each tensor is
    # converted once, straight to the dtype the device runs (fp16 file → bf16/fp16/fp32), instead
    # of to fp32 and again. bf16: autocast would cast every conv weight on each call; storing them
    # so gives bit-identical alphas for 3-4 % less CPU per image at 1024 (and half the memory).
    dtype = WEIGHT_DTYPES[precision]
    with torch.device("meta"):
        model = build_model(DEFAULT_MODEL)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(weights, assign=True)
    model = model.eval().to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def load_engine(
    weights: Path | None = None,
    device: str = "auto",
    size: int = 1024,
    precision: Precision | None = None,
) -> MattingEngine:
    """Resolve and verify the weights, build the model; :class:`WeightsError` on any problem.

    :class:`ConfigError` when ``precision`` does not suit the device or its cores (checked first).
    """
    torch_device = choose_device(device)
    chosen = precision or default_precision(torch_device)
    # bf16 on CUDA is precision_problem's, so the cores are only asked about a CPU's bf16.
    problem = precision_problem(chosen, torch_device.type) or _cores_problem(chosen)
    if problem:
        raise ConfigError([problem])
    location = resolve_weights_dir(weights)
    state = load_state_dict(location)
    if torch_device.type == "cuda":
        # One input size for ever: let cuDNN pick its fastest algorithms once (UNMEASURED here).
        torch.backends.cudnn.benchmark = True
    return MattingEngine(_build(state, torch_device, chosen), torch_device, chosen, size)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (``None``: every core)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
