"""The configuration: validated pydantic models, loaded from YAML.

Every key is documented in ``config.example.yaml``; :data:`DEFAULT_CONFIG_YAML`
is the embedded default that ``hotmatte run`` uses when no file is given.
Relative paths are resolved against the directory of the config file (the
current directory for the embedded default), so a config can travel with its
folders.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from daemon.errors import ConfigError
from daemon.finish.naming import check_template
from daemon.io.writers import OutputFormat
from daemon.profiles import (
    BUILTIN_PROFILES,
    Profile,
    background_kind,
    background_path,
    resolve_custom_profiles,
)

#: Names that are never work: partial copies, sync-tool temporaries, OS litter.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".*",
    "*.part",
    "*.tmp",
    "*.crdownload",
    "~*",
    "Thumbs.db",
    ".DS_Store",
    "._*",
    ".syncthing.*",
)

PACKAGE_ROOT = Path(__file__).resolve().parent
#: Where weights live when neither the config nor $HOTMATTE_WEIGHTS says.
DEFAULT_WEIGHTS_DIR = PACKAGE_ROOT.parent / "weights"

DEFAULT_CONFIG_YAML = """\
journal: .hotmatte/journal.sqlite
folders:
  - name: hot
    input: ./hot
    output: ./out
    profile: raw
"""

Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(gt=0)]
#: The model's arithmetic (daemon.matting.engine runs it).
Precision = Literal["fp32", "bf16", "fp16"]
#: Precisions that need one kind of device: (device type, its name, what to use instead).
_PRECISION_DEVICE = {
    "fp16": ("cuda", "CUDA", "auto, fp32 or bf16"),
    "bf16": ("cpu", "the CPU", "auto, fp16 or fp32"),
}


def precision_problem(precision: str, device: str) -> str | None:
    """Why a ``device`` (``cpu``, ``cuda``) cannot run ``precision``, or None if it can.

    Checked by the config when ``device`` is explicit and by the engine's load when it is auto.
    """
    if precision not in _PRECISION_DEVICE:
        return None
    needed, name, instead = _PRECISION_DEVICE[precision]
    if device == needed:
        return None
    return f"precision: {precision} runs on {name} only (the device is {device}); use {instead}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Workers(_Model):
    """Threads per stage and the model's batch size; ``auto`` sizes from the machine."""

    decode: PositiveInt | Auto = "auto"
    finish: PositiveInt | Auto = "auto"
    batch_size: PositiveInt | Auto = "auto"
    queue_size: PositiveInt = 8


class Retry(_Model):
    """Backoff for transient errors (share gone, disk full, GPU out of memory)."""

    max_attempts: PositiveInt = 5
    backoff_seconds: Annotated[float, Field(gt=0)] = 5.0
    backoff_max_seconds: Annotated[float, Field(gt=0)] = 600.0


class Cluster(_Model):
    """Several nodes share the work through PostgreSQL (daemon/journal/cluster.py).

    Without a ``cluster:`` section the embedded SQLite journal is used and no server is needed.
    """

    #: libpq URL or key=value string, e.g. ``postgresql://hotmatte@db.studio/hotmatte``.
    database: Annotated[str, Field(min_length=1)]
    #: This node's name, unique in the cluster: shown by ``hotmatte status``, recorded on each file.
    node: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.-]+$")]
    #: How often this node tells the others it is alive (Procrastinate's worker heartbeat).
    heartbeat_seconds: Annotated[float, Field(gt=0)] = 5.0
    #: A node silent this long is presumed dead: another node takes back its files.
    stalled_after_seconds: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _stalled_after_heartbeats(self) -> Cluster:
        if self.stalled_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "stalled_after_seconds must be at least twice heartbeat_seconds,"
                " or a live node's files would be taken from it"
            )
        return self


class Folder(_Model):
    """One hot folder: where files arrive, where results go, and how to treat them."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    input: Path
    output: Path
    profile: str = "raw"
    recursive: bool = True
    observer: Literal["auto", "native", "polling"] = "auto"
    poll_interval: Annotated[float, Field(gt=0)] = 2.0
    stable_seconds: Annotated[float, Field(ge=0)] = 2.0
    min_age_seconds: Annotated[float, Field(ge=0)] = 1.0
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    output_format: OutputFormat | None = None
    on_success: Literal["keep", "move"] = "keep"
    done_dir: Path | None = None
    error_dir: Path | None = None
    #: Results whose confidence (0–1, see daemon/finish/confidence.py) is below this go to review_dir.
    review_below: Annotated[float, Field(ge=0, le=1)] | None = None
    review_dir: Path | None = None
    #: The output's file name, like "{stem}.{ext}" (daemon/finish/naming.py); null: the profile's.
    output_name: str | None = None

    @field_validator("output_name")
    @classmethod
    def _output_name_is_a_template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @property
    def all_excludes(self) -> tuple[str, ...]:
        return DEFAULT_EXCLUDES + self.exclude

    @property
    def resolved_error_dir(self) -> Path:
        return self.error_dir or self.output.with_name(self.output.name + "-errors")

    @property
    def resolved_done_dir(self) -> Path:
        return self.done_dir or self.input.with_name(self.input.name + "-done")

    @property
    def resolved_review_dir(self) -> Path:
        return self.review_dir or self.output.with_name(self.output.name + "-review")

    @model_validator(mode="after")
    def _side_folders_outside_input(self) -> Folder:
        # A folder written inside the watched tree would be picked up as new work.
        sides = {"output": self.output, "error_dir": self.resolved_error_dir}
        if self.on_success == "move":
            sides["done_dir"] = self.resolved_done_dir
        if self.review_below is not None:
            sides["review_dir"] = self.resolved_review_dir
        for key, path in sides.items():
            if _is_within(path, self.input):
                raise ValueError(f"{key} ({path}) must not be inside input ({self.input})")
        return self


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) only reaches this machine."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "" (every interface), 0.0.0.0 and any other name are not loopback


class Console(_Model):
    """The browser console and ``/metrics``, served by ``hotmatte run`` (daemon/console/)."""

    #: host:port. Loopback by default; any other address needs ``token``.
    listen: str = "127.0.0.1:8765"
    token: str | None = None
    #: Largest upload one request may carry (a Try image, or a whole Batch), in MB: refused beyond it.
    upload_max_mb: Annotated[float, Field(gt=0)] = 2048.0

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port ([v6]:port for IPv6), e.g. 127.0.0.1:8765")
        return value

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 16`)")
        return value

    @model_validator(mode="after")
    def _network_needs_token(self) -> Console:
        # Refusing here makes `hotmatte run` exit 2 and `check-config` fail: an open console is
        # never served on a network, not even for the time it takes to notice.
        host = self.listen.rpartition(":")[0]
        if not self.token and not is_loopback(host):
            raise ValueError(
                f"listen {self.listen} is not a loopback address: set console.token "
                "(every request must then carry it), or listen on 127.0.0.1"
            )
        return self


class Config(_Model):
    """The whole daemon configuration."""

    weights: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: auto: fp16 on CUDA; on the CPU bf16 where the cores have AMX or are AMD's with
    #: avx512_bf16, fp32 elsewhere (daemon.matting.engine.default_precision). fp16 needs CUDA, bf16 the CPU.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    model_size: PositiveInt = 1024
    #: Keep the large buffers each file frees for the next (glibc's heap; daemon/pipeline/heap.py).
    reuse_freed_memory: bool = True
    max_megapixels: Annotated[float, Field(gt=0)] = 250.0
    #: Layered PSD/PSB without a merged image: psd-tools composites files up to this many
    #: megapixels (canvas and largest layer); larger ones are composited band by band.
    psd_layer_budget_megapixels: Annotated[float, Field(gt=0)] = 4.0
    journal: Path = Path("/var/lib/hotmatte/journal.sqlite")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: auto: coloured console lines on a terminal, JSON lines under systemd and in pipes (daemon/logs.py).
    log_format: Literal["auto", "json", "console"] = "auto"
    #: Done and failed rows whose source is gone are forgotten after this many days (daemon/journal/store.py).
    journal_keep_days: Annotated[float, Field(gt=0)] = 30.0
    reconcile_seconds: Annotated[float, Field(gt=0)] = 60.0
    drain_timeout_seconds: Annotated[float, Field(ge=0)] = 120.0
    #: No watchdog ping once work could go but nothing moved for this long (see daemon.service.loop).
    stall_seconds: Annotated[float, Field(gt=0)] = 900.0
    workers: Workers = Workers()
    retry: Retry = Retry()
    #: null turns the console (and /metrics) off.
    console: Console | None = Console()
    folders: tuple[Folder, ...] = ()
    #: Cluster mode (several nodes, one PostgreSQL); None: one node, the SQLite ``journal``.
    cluster: Cluster | None = None
    #: Custom profiles: each ``extends:`` a built-in and overrides knobs (daemon/profiles.py).
    profiles: dict[str, Profile] = {}

    @field_validator("profiles", mode="before")
    @classmethod
    def _extend_builtins(cls, value: Any) -> Any:
        return resolve_custom_profiles(value) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _folder_profiles_exist(self) -> Config:
        known = {**BUILTIN_PROFILES, **self.profiles}
        for index, folder in enumerate(self.folders):
            if folder.profile not in known:
                raise ValueError(
                    f"folders.{index}.profile: unknown profile {folder.profile!r}; "
                    f"choose one of: {', '.join(sorted(known))}"
                )
            if folder.output_format == "jpeg" and known[folder.profile].transparent:
                raise ValueError(
                    f"folders.{index}.output_format: jpeg has no alpha, and profile {folder.profile!r} "
                    "has a transparent background; use png or tiff, or a profile with a background"
                )
            template = folder.output_name or known[folder.profile].output_name
            if "{profile}" in template and ("/" in folder.profile or "\\" in folder.profile):
                raise ValueError(
                    f"folders.{index}.output_name: {{profile}} would put the / of profile "
                    f"{folder.profile!r} into file names; rename the profile or drop {{profile}}"
                )
        return self

    @model_validator(mode="after")
    def _background_images_exist(self) -> Config:
        # Checked once here, not found missing by every file of a shoot.
        for name, profile in self.profiles.items():
            if (
                background_kind(profile.background) == "image"
                and not background_path(profile.background).is_file()
            ):
                raise ValueError(f"profiles.{name}.background: no image file at {profile.background}")
        return self

    @field_validator("model_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError("must be a multiple of 32 (the model pools five times)")
        return value

    @model_validator(mode="after")
    def _precision_suits_device(self) -> Config:
        # device: auto is only known at start, where load_engine asks the same question.
        problem = None if self.device == "auto" else precision_problem(self.precision, self.device)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def model_precision(self) -> Precision | None:
        """The precision asked for, or None for the device's default."""
        return None if self.precision == "auto" else self.precision

    @model_validator(mode="after")
    def _unique_folder_names(self) -> Config:
        names = [f.name for f in self.folders]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"folder names must be unique; repeated: {', '.join(dupes)}")
        return self


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative paths absolute against ``base`` before validation."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
            return str(base / value)
        if isinstance(value, str):
            return os.path.expanduser(value)
        return value

    out = dict(data)
    for key in ("weights", "journal"):
        if key in out:
            out[key] = fix(out[key])
    if isinstance(out.get("folders"), list):
        out["folders"] = [
            {
                k: fix(v) if k in ("input", "output", "done_dir", "error_dir", "review_dir") else v
                for k, v in f.items()
            }
            if isinstance(f, dict)
            else f
            for f in out["folders"]
        ]
    if isinstance(out.get("profiles"), dict):
        out["profiles"] = {name: _resolve_background(p, fix) for name, p in out["profiles"].items()}
    return out


def _resolve_background(profile: Any, fix: Callable[[Any], Any]) -> Any:
    """A background image path, like every other path, is relative to the config file."""
    if not isinstance(profile, dict) or not isinstance(profile.get("background"), str):
        return profile
    try:
        kind = background_kind(profile["background"])
    except ValueError:
        return profile  # validation reports it, naming the key
    return {**profile, "background": fix(profile["background"])} if kind == "image" else profile


def _field_key(error: ErrorDetails) -> str:
    # Union members add their own tags ("constrained-int", "literal['auto']") to the location.
    parts = [str(p) for p in error["loc"] if isinstance(p, int) or str(p).isidentifier()]
    return ".".join(parts) or "(top level)"


def _describe_all(errors: list[ErrorDetails], source: str) -> list[str]:
    """One line per bad key: the alternatives of a union are joined, not listed twice."""
    by_key: dict[str, list[ErrorDetails]] = {}
    for error in errors:
        by_key.setdefault(_field_key(error), []).append(error)
    lines = []
    for key, group in by_key.items():
        if any(e["type"] == "extra_forbidden" for e in group):
            lines.append(f"{source}: {key}: unknown key")
            continue
        if all(e["type"] == "value_error" and isinstance(e.get("input"), dict) for e in group):
            # A check of a whole mapping (the config, a profile) says what is wrong in its message;
            # echoing the mapping back as "got" helps nobody.
            place = f"{key}: " if group[0]["loc"] else ""
            lines += [f"{source}: {place}{e['msg'].removeprefix('Value error, ')}" for e in group]
            continue
        message = ", or ".join(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in group))
        lines.append(f"{source}: {key}: {message} (got {group[0].get('input')!r})")
    return lines


def parse_config(text: str, base: Path, source: str = "config") -> Config:
    """Parse and validate YAML ``text``; raise :class:`ConfigError` listing every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of keys"])
    try:
        return Config.model_validate(_resolve_paths(data, base))
    except ValidationError as exc:
        raise ConfigError(_describe_all(exc.errors(), source)) from None


def load_config(path: Path | None) -> Config:
    """Load ``path``, or the embedded default (relative to the current directory)."""
    if path is None:
        return parse_config(DEFAULT_CONFIG_YAML, Path.cwd(), "embedded default config")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_config(text, path.resolve().parent, str(path))
