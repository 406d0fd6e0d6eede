"""Each profile's defining property, through ``hotmatte process`` (real model) and through ``cut_out``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from daemon.config import parse_config
from daemon.errors import ConfigError
from daemon.finish.cutout import cut_out, mask_path_for
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import load_engine, prepare
from daemon.pipeline.stages import STAGE_REPORT_ENV
from daemon.profiles import BUILTIN_PROFILES, build_profile
from tests.conftest import SMALL_MODEL_SIZE, farthest_island, photo, run_hotmatte, save_jpeg
from tests.service_harness import Daemon, folder_settings, write_config


def _process(tmp_path: Path, profile: str, source: Path) -> tuple[int, str, Path]:
    out = tmp_path / f"out-{profile}"
    result = run_hotmatte(
        "process", "--model-size", SMALL_MODEL_SIZE, "--profile", profile, "-o", out, source
    )
    return result.returncode, result.stderr, out


# -- through the command --------------------------------------------------------------------


def test_product_background_is_exactly_white_around_a_centred_square(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "coffee.jpg", photo("coffee"))
    code, stderr, out = _process(tmp_path, "product", source)
    assert code == 0, stderr
    rgb = np.asarray(Image.open(out / "coffee.png"))
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] == rgb.shape[1]  # square canvas
    border = max(2, int(0.02 * rgb.shape[0]))  # inside the 5 % margin: background only
    for strip in (rgb[:border], rgb[-border:], rgb[:, :border], rgb[:, -border:]):
        assert (strip == 255).all()
    assert (rgb < 250).any(axis=2).mean() > 0.2  # and the subject is there


def test_id_photo_has_the_exact_size_with_the_face_centred(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "astronaut.jpg", photo("astronaut"))
    code, stderr, out = _process(tmp_path, "id_photo", source)
    assert code == 0, stderr
    with Image.open(out / "astronaut.jpg") as image:
        assert image.size == (413, 531)
        assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)
        rgb = np.asarray(image.convert("RGB"))
    from daemon.finish.faces import find_face

    cx, cy = find_face(rgb).centre
    assert abs(cx - 413 / 2) < 0.08 * 413 and abs(cy - 531 / 2) < 0.08 * 531
    assert rgb[:15, :15].min() > 240  # the flag behind her became the white preset


def test_id_photo_without_a_face_fails_with_that_reason(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "coffee.jpg", photo("coffee"))
    code, stderr, out = _process(tmp_path, "id_photo", source)
    assert code == 1
    assert "NoFaceFound" in stderr and "no face found" in stderr and "Traceback" not in stderr
    assert not any(out.rglob("*.jpg"))


def test_portrait_keeps_opaque_colours_and_changes_only_the_edge(tmp_path: Path) -> None:
    source = tmp_path / "in" / "astronaut.png"
    source.parent.mkdir()
    Image.fromarray(photo("astronaut")).save(source)
    code, stderr, out = _process(tmp_path, "portrait", source)
    assert code == 0, stderr
    rgba = np.asarray(Image.open(out / "astronaut.png"))
    alpha = rgba[..., 3]
    original = photo("astronaut")
    opaque = alpha == 255
    assert opaque.mean() > 0.03  # at SMALL_MODEL_SIZE the model is rarely fully sure
    assert np.array_equal(rgba[opaque][:, :3], original[opaque])
    soft = (alpha > 10) & (alpha < 245)
    assert np.abs(rgba[soft][:, :3].astype(int) - original[soft]).mean() > 2  # decontaminated


def test_complex_background_leaves_only_the_subject_and_its_edge(tmp_path: Path) -> None:
    source = save_jpeg(tmp_path / "in" / "coffee.jpg", cv2.resize(photo("coffee"), (300, 200)))
    alphas = {}
    for profile in ("raw", "complex_background"):
        code, stderr, out = _process(tmp_path, profile, source)
        assert code == 0, stderr
        alphas[profile] = np.asarray(Image.open(out / "coffee.png"))[..., 3]
    # raw keeps a blob of the table far from the cup; what is left after cleaning is edge fringe.
    assert farthest_island(alphas["complex_background"]) < 12 < 40 < farthest_island(alphas["raw"])


# -- through cut_out, with a known alpha standing in for the model ---------------------------


def _scene(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A known soft-edged orange disc (with one stray blob) on a real photo; returns (file, α, F)."""
    h, w = 360, 480
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.clip((100 - np.hypot(yy - 180, xx - 220)) / 12, 0, 1).astype(np.float32)
    alpha[20:50, 420:460] = 1.0  # an island
    fg = np.dstack([0.95 + 0 * xx, 0.5 + 0 * xx, 0.1 + 0 * xx]).astype(np.float32)
    bg = cv2.resize(photo("astronaut"), (w, h)).astype(np.float32) / 255.0
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    source = tmp_path / "scene.png"
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(source)
    return source, alpha, fg


def _cut(
    source: Path, alpha: np.ndarray, out: Path, profile: str | dict[str, object], rows: int = 512
) -> Path:
    chosen = BUILTIN_PROFILES[profile] if isinstance(profile, str) else build_profile("t", profile)
    model_alpha = cv2.resize(alpha, (256, 256), interpolation=cv2.INTER_AREA)
    return cut_out(
        open_image(source, max_megapixels=10), model_alpha, Destination.at(out), chosen, band_rows=rows
    ).output


def test_decontamination_removes_the_halo_on_white(tmp_path: Path) -> None:
    source, alpha, fg = _scene(tmp_path)
    edge = (alpha > 0.05) & (alpha < 0.95)
    ideal = fg * alpha[..., None] + (1 - alpha[..., None])
    errors = {}
    for name, decontaminate in (("plain", False), ("clean", True)):
        out = _cut(
            source, alpha, tmp_path / f"{name}.png", {"extends": "portrait", "decontaminate": decontaminate}
        )
        rgba = np.asarray(Image.open(out)).astype(np.float32) / 255.0
        on_white = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        errors[name] = np.abs(on_white - ideal)[edge].mean()
    assert errors["clean"] < 0.7 * errors["plain"], errors


def test_complex_background_removes_islands(tmp_path: Path) -> None:
    source, alpha, _ = _scene(tmp_path)
    raw = np.asarray(Image.open(_cut(source, alpha, tmp_path / "raw.png", "raw")))
    cleaned = np.asarray(Image.open(_cut(source, alpha, tmp_path / "cb.png", "complex_background")))
    assert raw[25:45, 425:455, 3].min() > 200  # the island is in the model's alpha
    assert cleaned[25:45, 425:455, 3].max() == 0
    assert cleaned[170:190, 210:230, 3].min() == 255


def test_bands_equal_one_piece_for_every_full_resolution_step(tmp_path: Path) -> None:
    source, alpha, _ = _scene(tmp_path)
    knobs = {
        "extends": "product",
        "erode": 2,
        "feather": 1.5,
        "canvas": "300x200",
        "shadow": {},
        "save_mask": True,
    }
    banded = _cut(source, alpha, tmp_path / "banded.png", knobs, rows=64)
    whole = _cut(source, alpha, tmp_path / "whole.png", knobs, rows=1024)
    a, b = (np.asarray(Image.open(p)).astype(int) for p in (banded, whole))
    assert a.shape == (200, 300, 3)
    assert np.abs(a - b).max() <= 1
    assert np.array_equal(
        np.asarray(Image.open(mask_path_for(banded))), np.asarray(Image.open(mask_path_for(whole)))
    )


def test_jpeg_on_a_colour_and_review_routing(tmp_path: Path) -> None:
    source, alpha, _ = _scene(tmp_path)
    profile = build_profile("t", {"extends": "raw", "background": "light_blue", "output_format": "jpeg"})
    model_alpha = cv2.resize(alpha, (256, 256))
    result = cut_out(
        open_image(source, max_megapixels=10),
        model_alpha,
        Destination.at(tmp_path / "out" / "a.jpg"),
        profile,
        review_below=1.01,
        review_destination=Destination.at(tmp_path / "review" / "a.jpg"),
    )
    assert result.review and result.output == tmp_path / "review" / "a.jpg" and 0 <= result.confidence <= 1
    assert not (tmp_path / "out" / "a.jpg").exists()
    corner = np.asarray(Image.open(result.output))[300:, :40].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(corner, (0xCF, 0xE3, 0xF5), atol=3)


# -- configuration ---------------------------------------------------------------------------


def test_custom_profile_extends_a_builtin_and_bad_knobs_name_their_key() -> None:
    config = parse_config(
        "profiles:\n  studio: {extends: product, margin: 12, background: '#f0f0f0'}\n"
        "folders: [{name: a, input: /x/in, output: /x/out, profile: studio, review_below: 0.4}]\n",
        Path("/"),
    )
    studio = config.profiles["studio"]
    assert studio.margin == 12 and studio.crop == "subject" and studio.background == "#f0f0f0"
    assert config.folders[0].resolved_review_dir == Path("/x/out-review")
    for text, key in (
        ("profiles: {s: {extends: raw, erode: -1}}", "profiles.s.erode"),
        ("profiles: {s: {extends: raw, halo: 1}}", "profiles.s.halo"),
        ("profiles: {s: {extends: nothing}}", "profiles.s.extends"),
        ("profiles: {s: {extends: raw, output_format: jpeg}}", "jpeg has no alpha"),
        ("profiles: {s: {extends: raw, canvas: round}}", "canvas"),
        ("folders: [{name: a, input: /x/in, output: /x/out, profile: s}]", "folders.0.profile"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, Path("/"))
        assert key in str(caught.value), (text, caught.value.problems)


def test_webp_canvas_beyond_its_limit_is_named() -> None:
    with pytest.raises(ConfigError, match="webp holds at most 16383 px a side"):
        build_profile("banner", {"extends": "product", "output_format": "webp", "canvas": "20000x1000"})
    assert build_profile("web", {"extends": "product", "output_format": "webp", "canvas": "16383x1000"})
    with pytest.raises(ConfigError, match="jpeg holds at most 65535 px a side"):
        build_profile("banner", {"extends": "product", "output_format": "jpeg", "canvas": "70000x1000"})


def test_an_image_background_shows_wherever_the_subject_is_not(tmp_path: Path) -> None:
    source, alpha, _ = _scene(tmp_path)
    backdrop = tmp_path / "backdrop.png"
    Image.fromarray(photo("coffee")).save(backdrop)  # 600×400, resized to the 480×360 output
    out = _cut(
        source, alpha, tmp_path / "on-coffee.png", {"extends": "portrait", "background": str(backdrop)}
    )
    rgb = np.asarray(Image.open(out)).astype(int)
    expected = cv2.resize(photo("coffee"), (480, 360), interpolation=cv2.INTER_LINEAR).astype(int)
    assert rgb.shape == (360, 480, 3)
    clear = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
    assert np.abs(rgb[clear] - expected[clear]).mean() < 2.0
    assert np.abs(rgb[alpha == 1] - expected[alpha == 1]).mean() > 40  # the subject covers it


def test_finishing_reuses_the_models_proxy_instead_of_decoding_again(tmp_path: Path) -> None:
    source, alpha, _ = _scene(tmp_path)
    model_alpha = cv2.resize(alpha, (256, 256), interpolation=cv2.INTER_AREA)
    reader = open_image(source, max_megapixels=10)
    proxy = reader.proxy(1024)
    asked: list[int] = []
    decode_proxy = reader.proxy

    def counted_proxy(max_side: int) -> np.ndarray:
        asked.append(max_side)
        return decode_proxy(max_side)

    reader.proxy = counted_proxy  # type: ignore[method-assign]
    given = cut_out(
        reader, model_alpha, Destination.at(tmp_path / "given.png"), BUILTIN_PROFILES["portrait"], proxy=proxy
    )
    assert asked == []
    decoded = cut_out(
        reader, model_alpha, Destination.at(tmp_path / "decoded.png"), BUILTIN_PROFILES["portrait"]
    )
    assert asked == [1024]
    np.testing.assert_array_equal(
        np.asarray(Image.open(given.output)), np.asarray(Image.open(decoded.output))
    )


# -- edge detail from crops (detail: crops) ---------------------------------------------------


def _large_photo(tmp_path: Path) -> Path:
    """A photo large enough that the 256-px test model gets crops (1200×800: 256-px crops, 1:1)."""
    image = cv2.resize(photo("coffee"), (1200, 800), interpolation=cv2.INTER_CUBIC)
    return save_jpeg(tmp_path / "in" / "coffee.jpg", image)


def test_detail_crops_run_through_process_as_their_own_stage(tmp_path: Path) -> None:
    source = _large_photo(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("profiles:\n  flat:\n    extends: portrait\n    detail: none\n")
    report = tmp_path / "stages.json"
    crops = run_hotmatte(
        "process", "--model-size", SMALL_MODEL_SIZE, "--profile", "portrait",
        "-o", tmp_path / "crops", source, env={STAGE_REPORT_ENV: str(report)},
    )  # fmt: skip
    assert crops.returncode == 0, crops.stderr
    stages = {s["name"]: s["files"] for s in json.loads(report.read_text())["stages"]}
    assert stages == {"decode": 1, "model": 1, "detail": 1, "finish": 1}
    flat = run_hotmatte(
        "process", "--model-size", SMALL_MODEL_SIZE, "--config", config, "--profile", "flat",
        "-o", tmp_path / "flat", source, env={STAGE_REPORT_ENV: str(report)},
    )  # fmt: skip
    assert flat.returncode == 0, flat.stderr
    assert "detail" not in {s["name"] for s in json.loads(report.read_text())["stages"]}
    with_crops, without = (
        np.asarray(Image.open(tmp_path / name / "coffee.png"))[..., 3].astype(int)
        for name in ("crops", "flat")
    )
    changed = with_crops != without
    assert changed.mean() > 0.001  # the crops added detail
    # ... along the edge only: the subject/background decision is the global pass's.
    assert ((with_crops > 127) != (without > 127)).mean() < 0.01


def test_detail_crops_bands_equal_one_piece_with_the_real_model(tmp_path: Path, weights_dir: Path) -> None:
    source = _large_photo(tmp_path)
    engine = load_engine(weights_dir, device="cpu", size=SMALL_MODEL_SIZE, precision="fp32")
    reader = open_image(source, max_megapixels=10)
    alpha = engine.predict([prepare(reader.proxy(1024), SMALL_MODEL_SIZE)])[0]
    profile = BUILTIN_PROFILES["portrait"].model_copy(update={"save_mask": True})
    banded = cut_out(
        reader, alpha, Destination.at(tmp_path / "banded.png"), profile, band_rows=64, engine=engine
    )
    whole = cut_out(
        reader, alpha, Destination.at(tmp_path / "whole.png"), profile, band_rows=1024, engine=engine
    )
    assert banded.crops[0] > 1 and banded.crops == whole.crops
    for a, b in ((banded.output, whole.output), (mask_path_for(banded.output), mask_path_for(whole.output))):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_detail_knobs_are_validated_and_raw_has_no_crops() -> None:
    assert BUILTIN_PROFILES["raw"].detail == "none" and BUILTIN_PROFILES["raw"].is_raw
    for name in ("portrait", "product", "id_photo", "complex_background"):
        assert BUILTIN_PROFILES[name].detail == "crops"
    with pytest.raises(ConfigError, match=r"profiles\.t\.detail"):
        build_profile("t", {"extends": "portrait", "detail": "tiles"})
    with pytest.raises(ConfigError, match=r"profiles\.t\.detail_budget"):
        build_profile("t", {"extends": "portrait", "detail_budget": 0})
    with pytest.raises(ConfigError, match=r"profiles\.t\.detail_overlap"):
        build_profile("t", {"extends": "portrait", "detail_overlap": 0.9})


def test_detail_budget_is_auto_in_the_built_in_profiles_with_crops_and_explicit_counts_are_kept() -> None:
    for name in ("portrait", "product", "id_photo", "complex_background"):
        assert BUILTIN_PROFILES[name].detail_budget == "auto"
    assert build_profile("t", {"extends": "portrait", "detail_budget": 8}).detail_budget == 8
    assert build_profile("t", {"extends": "portrait", "detail_budget": "auto"}).detail_budget == "auto"
    for bad in (0, 257, "many", 4.5, True):
        with pytest.raises(ConfigError, match=r"profiles\.t\.detail_budget: .*must be auto or a whole"):
            build_profile("t", {"extends": "portrait", "detail_budget": bad})


def test_detail_crops_run_in_the_daemon_and_status_shows_their_stage(tmp_path: Path) -> None:
    source = _large_photo(tmp_path)
    folder = folder_settings(tmp_path, "hot", profile="portrait")
    config = write_config(tmp_path / "c.yaml", [folder])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        (tmp_path / "hot" / "coffee.jpg").write_bytes(source.read_bytes())
        done = daemon.wait_for("done", timeout=120)
        # The stage timings are published every 30 s once files went through.
        (stages,) = daemon.wait_for("stages", timeout=60)
        assert daemon.terminate() == 0
    assert {s["name"]: s["files"] for s in stages["stages"]}["detail"] == 1
    assert np.asarray(Image.open(done[0]["output"])).shape == (800, 1200, 4)
    status = run_hotmatte("status", "--config", config)
    assert any(line.split()[:3] == ["detail", "1", "1"] for line in status.stdout.splitlines()), status.stdout
