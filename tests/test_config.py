"""Config errors name the key and say what it should be; one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import DEFAULT_EXCLUDES, load_config, parse_config
from daemon.errors import ConfigError
from tests.conftest import REPO, run_hotmatte


def problems(text: str, base: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base, "c.yaml")
    return caught.value.problems


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    found = problems(
        "device: gpu\nmodel_size: 100\nfolders:\n  - {name: a, input: in, output: out, stable_secnds: 3}\n",
        tmp_path,
    )
    assert any(p.startswith("c.yaml: device: Input should be 'auto', 'cpu' or 'cuda'") for p in found)
    assert any("model_size" in p and "multiple of 32" in p for p in found)
    assert "c.yaml: folders.0.stable_secnds: unknown key" in found
    assert len(found) == 3


def test_output_inside_input_is_refused(tmp_path: Path) -> None:
    found = problems("folders:\n  - {name: a, input: hot, output: hot/out}\n", tmp_path)
    assert len(found) == 1 and "output" in found[0] and "must not be inside input" in found[0]


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "c.yaml"
    path.parent.mkdir()
    path.write_text("folders:\n  - {name: a, input: hot, output: ../out}\n")
    folder = load_config(path).folders[0]
    assert folder.input == tmp_path / "conf" / "hot"
    assert folder.resolved_error_dir == (tmp_path / "conf" / "../out-errors")
    assert set(DEFAULT_EXCLUDES) <= set(folder.all_excludes)


def test_embedded_default_watches_hot_and_writes_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (folder,) = load_config(None).folders
    assert (folder.input, folder.output) == (tmp_path / "hot", tmp_path / "out")


def test_example_config_is_valid() -> None:
    result = run_hotmatte("check-config", REPO / "config.example.yaml")
    assert result.returncode == 0, result.stderr


def test_check_config_exits_two_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_level: loud\nworkers: {decode: 0}\n")
    result = run_hotmatte("check-config", bad)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("hotmatte: config error: ") for line in lines)


def test_a_missing_background_image_is_named_at_load(tmp_path: Path) -> None:
    found = problems("profiles:\n  studio: {extends: product, background: backdrops/grey.jpg}\n", tmp_path)
    assert found == [f"c.yaml: profiles.studio.background: no image file at {tmp_path}/backdrops/grey.jpg"]


def test_a_bad_profile_is_named_without_echoing_all_its_knobs(tmp_path: Path) -> None:
    text = "profiles:\n  web: {extends: product, output_format: webp, canvas: 20000x10}\n"
    expected = "c.yaml: profiles.web: output_format webp holds at most 16383 px a side: canvas too large"
    assert problems(text, tmp_path) == [expected]


def test_cluster_settings_are_checked_and_named(tmp_path: Path) -> None:
    assert parse_config("{}", tmp_path).cluster is None  # no cluster: the SQLite journal, no server
    good = parse_config("cluster: {database: 'postgresql://db/hm', node: ws-1}", tmp_path).cluster
    assert good is not None and (good.node, good.stalled_after_seconds) == ("ws-1", 30.0)
    found = problems("cluster: {database: 'postgresql://db/hm', node: 'no spaces', bogus: 1}", tmp_path)
    assert any(p.startswith("c.yaml: cluster.node:") for p in found)
    assert any(p.startswith("c.yaml: cluster.bogus: unknown key") for p in found)
    timing = "cluster: {database: x, node: a, heartbeat_seconds: 20, stalled_after_seconds: 30}"
    assert problems(timing, tmp_path) == [
        "c.yaml: cluster: stalled_after_seconds must be at least twice heartbeat_seconds,"
        " or a live node's files would be taken from it"
    ]


def test_a_bad_detail_budget_is_named_and_auto_or_a_count_is_accepted(tmp_path: Path) -> None:
    found = problems("profiles:\n  web: {extends: portrait, detail_budget: lots}\n", tmp_path)
    expected = "c.yaml: profiles.web.detail_budget: must be auto or a whole number from 1 to 256 (got 'lots')"
    assert found == [expected]
    for value in ("auto", "6"):
        config = parse_config(f"profiles:\n  web: {{extends: portrait, detail_budget: {value}}}\n", tmp_path)
        assert config.profiles["web"].detail_budget == (value if value == "auto" else int(value))


def test_precision_is_checked_against_the_device_and_auto_leaves_it_to_the_engine(tmp_path: Path) -> None:
    found = problems("device: cpu\nprecision: fp16\n", tmp_path)
    assert len(found) == 1 and "precision: fp16 runs on CUDA only" in found[0]
    found = problems("device: cuda\nprecision: bf16\n", tmp_path)
    assert len(found) == 1 and "precision: bf16 runs on the CPU only" in found[0]
    found = problems("precision: int8\n", tmp_path)
    assert len(found) == 1
    assert found[0].startswith("c.yaml: precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'")
    assert parse_config("precision: fp32\n", tmp_path).model_precision == "fp32"
    assert parse_config("device: cpu\n", tmp_path).model_precision is None
