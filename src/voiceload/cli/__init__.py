"""The ``voiceload`` command: one sub-command per module, imported only when it is used.

Every sub-command lives in this package as ``voiceload/cli/<command>.py`` (the module is named
after the command) and exposes ``configure_parser(parser)`` and ``main(args) -> int``; it parses
arguments and calls library code. ``python -m voiceload.cli`` runs this dispatcher too.
Errors derived from :class:`~voiceload.errors.VoiceloadError` print as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from voiceload.credentials import redact, redact_stdio
from voiceload.errors import VoiceloadError

# name -> (module implementing configure_parser/main, one-line help)
# Add a line here when a sub-command module lands (tests import every entry).
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("voiceload.cli.check", "preflight: config, DNS, TCP, TLS, upgrade, Flux, Aura"),
    "fixtures": ("voiceload.cli.fixtures", "check the audio fixtures manifest; add a recording"),
    "cost": ("voiceload.cli.cost", "what N voice sessions/day cost and need, without a run"),
    "compare": ("voiceload.cli.compare", "compare two runs: regressed / improved / within noise"),
    "calibrate": ("voiceload.cli.calibrate", "fit the emulator's delays to a measured run"),
    "emulate": ("voiceload.cli.emulate", "run the offline Flux/Aura emulator (AI Gateway routes)"),
    "report": ("voiceload.cli.report", "render a run's report.html and junit.xml"),
    "run": ("voiceload.cli.run", "run a benchmark: emulator + Locust + artifacts + report"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceload", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == wanted:  # import only the module that runs
            module = importlib.import_module(module_name)
            module.configure_parser(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command. Its ``print`` output and any traceback pass through
    :func:`~voiceload.credentials.redact` (:func:`~voiceload.credentials.redact_stdio`): a
    sub-command registers its secrets when it loads credentials, and from then on none of them
    reaches the terminal. Output of child processes is theirs to redact."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    redact_stdio()
    try:
        code: int = args._main(args)
    except VoiceloadError as exc:
        # Safety net: no registered credential reaches the terminal, whatever raised.
        print(f"voiceload {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()  # text held back waiting for its newline
        sys.stderr.flush()
    return code
