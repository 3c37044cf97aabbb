"""``voiceload fixtures check|add|list``: validate the manifest, add a recording, list fixtures.

- ``check``: one line per problem on stdout, exit 1 if any, else a one-line summary and 0.
- ``add FILE --transcript "..."`` (or ``--turn-transcript`` once per turn): copies FILE into
  the fixtures' audio directory, measures its turns with the VAD and writes the entry;
  ``--channel N`` keeps only channel N of a multi-channel recording (default: mix).
- ``list``: name, duration, turns and file of every fixture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voiceload.errors import ConfigError
from voiceload.fixtures import add_fixture, check_manifest, load_manifest


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="manifest.toml to use (default: fixtures/audio/manifest.toml of the repository "
        "or $VOICELOAD_FIXTURES_DIR/audio/manifest.toml)",
    )
    sub = parser.add_subparsers(dest="fixtures_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check", parents=[common], help="validate every entry (file, hash, VAD turns)"
    )
    check.add_argument(
        "--no-measure", action="store_true", help="skip re-measuring turns (hashes only)"
    )
    sub.add_parser("list", parents=[common], help="list the fixtures")
    add = sub.add_parser("add", parents=[common], help="add your own recording (any WAV/FLAC/OGG)")
    add.add_argument("file", type=Path, help="the recording to copy in")
    add.add_argument("--name", help="fixture name (default: the file name, lower-cased)")
    texts = add.add_mutually_exclusive_group(required=True)
    texts.add_argument("--transcript", help="reference transcript of a single-turn recording")
    texts.add_argument(
        "--turn-transcript",
        action="append",
        metavar="TEXT",
        help="reference transcript of one turn; repeat once per turn, in order",
    )
    add.add_argument(
        "--reply",
        action="append",
        default=[],
        metavar="TEXT",
        help="scripted agent reply to one turn; repeat once per turn (optional)",
    )
    add.add_argument(
        "--channel",
        type=int,
        default=None,
        metavar="N",
        help="keep only channel N (1 = left), e.g. one party of a two-party call recording "
        "(default: mix all channels)",
    )
    add.add_argument("--source", default="user recording", help="where the audio comes from")
    add.add_argument("--licence", default="user-supplied; check before sharing", help="its licence")


def main(args: argparse.Namespace) -> int:
    if args.fixtures_command == "check":
        manifest = load_manifest(args.manifest)
        problems = check_manifest(manifest, measure=not args.no_measure)
        for problem in problems:
            print(problem)
        if problems:
            return 1
        print(f"{len(manifest.fixtures)} fixtures OK ({manifest.path})")
        return 0
    if args.fixtures_command == "list":
        manifest = load_manifest(args.manifest)
        for f in manifest.fixtures:
            print(f"{f.name:32} {f.duration_s:7.2f} s  {len(f.turns)} turn(s)  {f.file}")
        return 0
    if args.fixtures_command == "add":
        transcripts = [args.transcript] if args.transcript is not None else args.turn_transcript
        fixture = add_fixture(
            args.file,
            transcripts,
            name=args.name,
            replies=args.reply,
            source=args.source,
            licence=args.licence,
            manifest_path=args.manifest,
            channel=args.channel,
        )
        turns = ", ".join(f"{t.onset_s:.2f}-{t.offset_s:.2f} s" for t in fixture.turns)
        print(f"added fixture {fixture.name!r} ({fixture.path}): turns {turns}")
        return 0
    raise ConfigError(f"unknown fixtures action {args.fixtures_command!r}")
