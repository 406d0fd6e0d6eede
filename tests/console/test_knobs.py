"""Profile knobs ↔ form controls and the YAML snippet (daemon/console/knobs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.console.knobs import controls, profile_from_form, snippet, validate_snippet
from daemon.errors import ConfigError
from daemon.profiles import BUILTIN_PROFILES, Profile, Shadow


def _form(profile: Profile) -> dict[str, str]:
    """What the page's form sends for ``profile`` (every control, checkboxes as true/false)."""
    return {
        c.name: str(c.value).lower() if isinstance(c.value, bool) else str(c.value) for c in controls(profile)
    }


def test_every_profile_knob_has_a_control() -> None:
    names = {c.name for c in controls(BUILTIN_PROFILES["product"])}
    assert names == (set(Profile.model_fields) - {"name"}) | {f"shadow.{k}" for k in Shadow.model_fields}


@pytest.mark.parametrize("name", list(BUILTIN_PROFILES))
def test_a_profile_survives_the_form_unchanged(name: str) -> None:
    profile = BUILTIN_PROFILES[name]
    assert profile_from_form(_form(profile), set(), name) == profile


def test_a_shadow_is_sent_only_when_its_box_is_ticked() -> None:
    form = {**_form(BUILTIN_PROFILES["product"]), "shadow": "true", "shadow.blur": "30"}
    assert profile_from_form(form, set()).shadow == Shadow(blur=30)
    assert profile_from_form({**form, "shadow": "false"}, set()).shadow is None


def test_bad_values_come_back_as_readable_lines() -> None:
    form = {**_form(BUILTIN_PROFILES["raw"]), "erode": "900", "canvas": "big"}
    with pytest.raises(ConfigError) as caught:
        profile_from_form(form, set())
    assert any(line.startswith("erode: ") and "500" in line for line in caught.value.problems)


def test_the_detail_budget_is_auto_or_a_count_typed_in_the_form() -> None:
    form = _form(BUILTIN_PROFILES["portrait"])
    assert form["detail_budget"] == "auto"
    assert profile_from_form({**form, "detail_budget": "6"}, set()).detail_budget == 6
    with pytest.raises(ConfigError) as caught:
        profile_from_form({**form, "detail_budget": "some"}, set())
    expected = "detail_budget: must be auto or a whole number from 1 to 256 (got 'some')"
    assert caught.value.problems == [expected]


def test_a_background_image_the_config_does_not_use_is_refused(tmp_path: Path) -> None:
    form = {**_form(BUILTIN_PROFILES["product"]), "background": "/etc/ssh/moduli.png"}
    with pytest.raises(ConfigError, match="a configured profile uses"):
        profile_from_form(form, set())
    allowed = str(tmp_path / "studio.png")
    assert profile_from_form({**form, "background": allowed}, {allowed}).background == allowed


def test_the_snippet_lists_only_what_differs_from_the_built_in_and_passes_check_config() -> None:
    profile = BUILTIN_PROFILES["portrait"].model_copy(update={"feather": 2.5})
    text = snippet("soft", profile, "portrait")
    assert text == "profiles:\n  soft:\n    extends: portrait\n    feather: 2.5\n"
    assert validate_snippet(text, Path.cwd()) == []
    assert validate_snippet(snippet("portrait", profile, "portrait"), Path.cwd())  # a built-in's name
