"""Damaged files of every format end in a project error or in pixels: never anything else.

A seeded corpus (``fuzz_corpus``): small valid JPEG, PNG 8/16-bit, WebP lossy/lossless,
TIFF striped/tiled/compressed/raw, PSD/PSB 8/16-bit RLE/raw and HEIC files, each mutated by byte
flips, truncation and corruption of its length and offset fields. Each case goes through
``open_image`` + ``proxy`` + every band in a worker process whose address space is capped
(``fuzz_runner``), with a deadline per case. ``bench/fuzz.py`` runs the same at larger counts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.io.fuzz_corpus import build_cases, copy_seeds
from tests.io.fuzz_runner import Worker

CASES = 4800
SEED = 20261130
CASE_TIMEOUT_S = 10.0
MAX_WORKER_RSS_MB = 1024


def test_every_seed_file_reads_cleanly(tmp_path: Path) -> None:
    # Otherwise every mutation would fail for the seed's sake and the fuzz test would prove nothing.
    with Worker(timeout=CASE_TIMEOUT_S) as worker:
        results = {path.name: worker.run(path) for path in copy_seeds(tmp_path)}
    assert {name: r.outcome for name, r in results.items() if r.outcome != "ok"} == {}


def test_damaged_files_raise_only_project_errors_without_hanging_or_growing(tmp_path: Path) -> None:
    cases = build_cases(tmp_path, CASES, SEED)
    outcomes: Counter[tuple[str, str]] = Counter()
    bad = []
    peak_kb = 0
    with Worker(timeout=CASE_TIMEOUT_S) as worker:
        for case in cases:
            result = worker.run(case.path)
            outcomes[case.format, result.outcome] += 1
            peak_kb = max(peak_kb, result.max_rss_kb)
            if not result.acceptable:
                bad.append(f"{case.path.name} ({case.mutation}): {result.outcome}: {result.message}")
            case.path.unlink()
    assert bad == [], f"{len(bad)} of {CASES} cases ended outside daemon.errors:\n" + "\n".join(bad[:30])
    assert peak_kb / 1024 < MAX_WORKER_RSS_MB
    formats = {fmt for fmt, _ in outcomes}
    assert formats == {"jpeg", "png", "webp", "tiff", "psd", "heif"}
    for fmt in formats:  # the mutations neither always break a file nor never do
        assert outcomes[fmt, "ok"] > 0
        assert sum(n for (f, outcome), n in outcomes.items() if f == fmt and outcome != "ok") > 0
