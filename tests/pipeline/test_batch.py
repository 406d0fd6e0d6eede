"""``hotmatte process`` input walking: the daemon's built-in excludes, matched the daemon's way."""

from __future__ import annotations

from pathlib import Path

from daemon.pipeline.batch import Input, walk_inputs


def test_a_folder_walk_skips_the_same_litter_as_the_daemon_whatever_its_case(tmp_path: Path) -> None:
    names = ["a.JPG", "THUMBS.DB", "Thumbs.db", "._a.jpg", ".DS_Store", "b.JPG.PART", "c.Tmp", "sub/d.png"]
    names += [".hidden/e.jpg", "~$lock.psd"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [i.path.relative_to(tmp_path).as_posix() for i in walk_inputs([tmp_path])]
    assert found == ["a.JPG", "sub/d.png"]
    given = tmp_path / "THUMBS.DB"
    assert list(walk_inputs([given])) == [Input(given, tmp_path, walked=False)]  # named on purpose: taken
