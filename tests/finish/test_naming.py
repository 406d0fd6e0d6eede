"""``output_name``: same-name pairs (``x.psd`` beside ``x.jpg``) through ``hotmatte process`` and
a real daemon, the template's rules, and its validation in a config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from daemon.config import parse_config
from daemon.errors import ConfigError
from daemon.finish.naming import check_template, output_relative
from daemon.finish.roots import MARKER_NAME
from daemon.journal.store import Fingerprint, Journal
from daemon.service.folder_files import destination_for, fingerprint
from tests.conftest import SMALL_MODEL_SIZE, photo, run_hotmatte, save_jpeg
from tests.flat_psd import write_flat_psd
from tests.service_harness import Daemon, folder_settings, write_config

SIZES = {"x.jpg": photo("coffee").shape[1::-1], "x.psd": photo("chelsea").shape[1::-1]}


def same_name_pair(folder: Path) -> Path:
    """``x.jpg`` (the coffee cup) and ``x.psd`` (the cat): both want ``x.png`` by default."""
    save_jpeg(folder / "x.jpg", photo("coffee"))
    write_flat_psd(folder / "x.psd", photo("chelsea"))
    return folder


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


# --- the template ---------------------------------------------------------------------------------


def test_the_default_keeps_todays_names_and_stem_ext_keeps_the_source_extension() -> None:
    assert output_relative("{stem}", "a/b/x.psd", "raw", "png").as_posix() == "a/b/x.png"
    assert output_relative("{stem}", "x.tar.gz", "raw", "tiff").as_posix() == "x.tar.tif"
    assert output_relative("{stem}.{ext}", "a/x.PSD", "raw", "png").as_posix() == "a/x.PSD.png"
    assert output_relative("{stem}.{ext}", "README", "raw", "png").as_posix() == "README.png"
    assert output_relative("{profile}-{stem}", "x.jpg", "shop", "jpeg").as_posix() == "shop-x.jpg"


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{stem}.{extension}", "unknown placeholder {extension}"),
        ("{stem:>8}", "unknown placeholder {stem:>8}"),
        ("{stem!r}", "unknown placeholder {stem!r}"),
        ("{}", "unknown placeholder {}"),
        ("cut/{stem}", "without / or \\"),
        ("..\\{stem}", "without / or \\"),
        ("{stem", "expected '}'"),
        ("", "must contain {stem}"),
        ("{ext}", "must contain {stem}"),
    ],
)
def test_a_bad_template_is_refused_saying_what_it_should_be(template: str, says: str) -> None:
    with pytest.raises(ValueError) as error:
        check_template(template)
    assert says in str(error.value)


def test_config_errors_name_the_folder_and_profile_keys(tmp_path: Path) -> None:
    text = (
        "profiles:\n"
        "  shop: {extends: product, output_name: '{name}'}\n"
        "folders:\n"
        "  - {name: a, input: in, output: out, output_name: 'sub/{stem}'}\n"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text, tmp_path)
    problems = "\n".join(error.value.problems)
    assert "folders.0.output_name: must be a file name, without / or \\" in problems
    assert (
        "profiles.shop.output_name: unknown placeholder {name}; use only {stem}, {ext}, {profile}" in problems
    )
    assert "Value error" not in problems


def test_a_profile_name_with_a_slash_cannot_go_into_file_names(tmp_path: Path) -> None:
    text = (
        "profiles:\n  a/b: {extends: raw}\n"
        "folders:\n  - {name: a, input: in, output: out, profile: a/b, output_name: '{stem}_{profile}'}\n"
    )
    with pytest.raises(ConfigError, match=r"folders\.0\.output_name: \{profile\} would put the /"):
        parse_config(text, tmp_path)


def test_the_folder_overrides_the_profile_and_a_changed_template_is_a_changed_output(tmp_path: Path) -> None:
    def config(folder_name: str | None) -> str:
        override = f", output_name: '{folder_name}'" if folder_name else ""
        return (
            "profiles:\n  keep_ext: {extends: raw, output_name: '{stem}.{ext}'}\n"
            f"folders:\n  - {{name: a, input: in, output: out, profile: keep_ext{override}}}\n"
        )

    by_profile = parse_config(config(None), tmp_path)
    by_folder = parse_config(config("{stem}_{profile}"), tmp_path)
    out = tmp_path / "out"
    assert destination_for(by_profile.folders[0], "x.psd", by_profile).path == out / "x.psd.png"
    assert destination_for(by_folder.folders[0], "x.psd", by_folder).path == out / "x_keep_ext.png"
    # The journal redoes a file whose fingerprint changed: a new template writes the new name.
    assert fingerprint(by_profile, by_profile.folders[0], 1, 1) != fingerprint(
        by_folder, by_folder.folders[0], 1, 1
    )
    # ...while the default template leaves existing journals' fingerprints as they were.
    plain = parse_config("folders:\n  - {name: a, input: in, output: out}\n", tmp_path)
    explicit = parse_config(
        "folders:\n  - {name: a, input: in, output: out, output_name: '{stem}'}\n", tmp_path
    )
    assert fingerprint(plain, plain.folders[0], 1, 1) == fingerprint(explicit, explicit.folders[0], 1, 1)


# --- hotmatte process -------------------------------------------------------------------------------


def test_process_refuses_the_second_of_a_same_name_pair_by_default(weights_dir: Path, tmp_path: Path) -> None:
    inputs = same_name_pair(tmp_path / "in")
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "-o", tmp_path / "out", inputs)
    assert result.returncode == 1
    assert "x.psd: its output" in result.stderr and "already the output of" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
    assert size_of(tmp_path / "out" / "x.png") == SIZES["x.jpg"]  # the first one's, not overwritten


def test_process_with_stem_ext_writes_both_of_a_same_name_pair(weights_dir: Path, tmp_path: Path) -> None:
    inputs = same_name_pair(tmp_path / "in")
    out = tmp_path / "out"
    result = run_hotmatte(
        "process", "--model-size", SMALL_MODEL_SIZE, "--output-name", "{stem}.{ext}", "-o", out, inputs
    )
    assert result.returncode == 0, result.stderr
    assert size_of(out / "x.jpg.png") == SIZES["x.jpg"]
    assert size_of(out / "x.psd.png") == SIZES["x.psd"]
    assert not (out / "x.png").exists()


def test_process_names_a_bad_output_name_and_exits_2(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "a.jpg", photo("coffee"))
    result = run_hotmatte("process", "--output-name", "{name}", "-o", tmp_path / "out", source)
    assert result.returncode == 2
    assert "--output-name '{name}': unknown placeholder {name}" in result.stderr


# --- the daemon -------------------------------------------------------------------------------------


def test_the_daemon_refuses_the_second_by_default_and_writes_both_with_stem_ext(
    weights_dir: Path, tmp_path: Path
) -> None:
    folders = [
        folder_settings(tmp_path, "plain"),
        folder_settings(tmp_path, "kept", output_name="{stem}.{ext}"),
    ]
    config = write_config(tmp_path / "c.yaml", folders)
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        save_jpeg(tmp_path / "plain" / "x.jpg", photo("coffee"))
        same_name_pair(tmp_path / "kept")
        daemon.wait_for("done", folder="plain", path="x.jpg", timeout=120)
        write_flat_psd(tmp_path / "plain" / "x.psd", photo("chelsea"))
        daemon.wait_for("done", count=2, folder="kept", timeout=120)
        daemon.wait_for("failed", folder="plain", path="x.psd", timeout=60)
        assert daemon.terminate() == 0
        assert not daemon.named("(not json)")

    # (and the daemon's hidden .hotmatte-root marker, daemon/finish/roots.py)
    assert sorted(p.name for p in (tmp_path / "plain-out").iterdir()) == [MARKER_NAME, "x.png"]
    assert size_of(tmp_path / "plain-out" / "x.png") == SIZES["x.jpg"]
    record = json.loads((tmp_path / "plain-out-errors" / "x.psd.error.json").read_text())
    assert record["error_class"] == "OutputCollision" and "x.jpg" in record["reason"]
    assert sorted(p.name for p in (tmp_path / "kept-out").iterdir()) == [
        MARKER_NAME,
        "x.jpg.png",
        "x.psd.png",
    ]
    assert size_of(tmp_path / "kept-out" / "x.jpg.png") == SIZES["x.jpg"]
    assert size_of(tmp_path / "kept-out" / "x.psd.png") == SIZES["x.psd"]
    assert not (tmp_path / "kept-out-errors").exists()


def test_the_journal_finds_rivals_by_the_names_the_template_gives(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite")
    fp = Fingerprint(1, 1, "p", "1")
    older = ["x.jpg", "x.", "a_b.c", "sub/x.jpg", "sub0/x.jpg", "sub.d/x.jpg", "sub/deeper/x.jpg", "gone.jpg"]
    for path in older:
        journal.offer("hot", path, fp)
    failed = journal.get("hot", "gone.jpg")
    assert failed is not None
    journal.mark_failed(failed.id, "CorruptInput", "truncated")  # failed rows own no output

    def rivals(path: str, template: str) -> list[str]:
        journal.offer("hot", path, fp)
        entry = journal.get("hot", path)
        assert entry is not None
        key = lambda relative: output_relative(template, relative, "raw", "png").as_posix()  # noqa: E731
        return [e.path for e in journal.same_output_rivals(entry, key)]

    assert rivals("x.psd", "{stem}") == ["x.jpg", "x."]
    assert rivals("x.psb", "{stem}.{ext}") == []
    assert rivals("sub/x.psd", "{stem}") == ["sub/x.jpg"]  # not sub0/, sub.d/ or sub/deeper/
    assert rivals("a.b_c", "{stem}_{ext}") == ["a_b.c"]  # different stems, the same name
    assert rivals("gone.png", "{stem}") == []
    journal.close()
