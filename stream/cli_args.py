"""argparse pieces the commands share: one-line usage errors (exit code 2), a flag for every
setting, settings checked before a command starts, and Faust's worker options."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from stream.config import CHOICES, ENV_PREFIX, HELP, Settings, SettingError, is_secret, load_settings
from stream.data_dir import claim

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# Faust's spellings, accepted too.
LOG_LEVEL_ALIASES = {"crit": "critical", "warn": "warning"}


class Parser(argparse.ArgumentParser):
    """A usage error is one line and exit code 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    print(f"segstream {args.command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def setting_error(args: argparse.Namespace, error: SettingError) -> NoReturn:
    """A setting not accepted, as a usage error naming its flag too."""
    usage_error(args, f"{error} (flag --{error.name.replace('_', '-')})")


def checked(parse: Callable[[str], Any], form: str) -> Callable[[str], Any]:
    """An argparse type: ``parse``, whose ValueError becomes one line naming the accepted ``form``."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}") from None

    return convert


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every setting (``--k`` for SEGSTREAM_K), so new settings get theirs too."""
    group = parser.add_argument_group("settings", "each also read from its SEGSTREAM_* variable; a flag wins")
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        name, default = field.name, getattr(defaults, field.name)
        shown = "set" if is_secret(name) and default else repr(default)
        kind: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction} if isinstance(default, bool)
            else {"type": type(default), "choices": CHOICES.get(name)}
        )
        group.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None,
            help=f"{HELP[name]} (env {ENV_PREFIX}{name.upper()}, default {shown})", **kind,
        )


def add_faust_options(parser: argparse.ArgumentParser) -> None:
    """The options of Faust's own ``worker`` command that segstream does not take as settings
    (--web-host and --web-port are the settings of those names)."""
    parser.add_argument(
        "-l", "--loglevel", type=lambda text: LOG_LEVEL_ALIASES.get(text.lower(), text.lower()), choices=LOG_LEVELS,
        default="info", help="log level (default info)",
    )
    parser.add_argument("-f", "--logfile", metavar="PATH", help="write the log to this file instead of stderr")


def port_number(text: str) -> int:
    """A TCP port, 1..65535 (ValueError otherwise)."""
    if not 0 < int(text) < 65_536:
        raise ValueError(text)
    return int(text)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {field.name: getattr(args, field.name, None) for field in dataclasses.fields(Settings)}


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment and the flags; a value not accepted is a usage error."""
    try:
        return load_settings(**overrides(args))
    except SettingError as exc:
        setting_error(args, exc)
    except ValueError as exc:
        usage_error(args, str(exc))


def worker_settings(args: argparse.Namespace) -> Settings:
    """:func:`settings_from`, and the model folder checked before anything waits for a broker."""
    from models.export import check_model_folder

    settings = settings_from(args)
    if settings.model_path:
        try:
            check_model_folder(Path(settings.model_path))
        except ValueError as exc:
            usage_error(args, f"{ENV_PREFIX}MODEL_PATH (flag --model-path): {exc}")
    return settings


def checked_again(args: argparse.Namespace, settings: Settings, why: str) -> Settings:
    """``settings`` a command derived (a fresh replay's), checked as :func:`settings_from` checks
    what it reads; ``why`` says where they come from in the usage error."""
    try:
        return load_settings(env={}, **dataclasses.asdict(settings))
    except SettingError as exc:
        usage_error(args, f"{why}: {exc}")


def claimed_data_dir(args: argparse.Namespace, settings: Settings) -> contextlib.AbstractContextManager[object]:
    """The data dir of the worker ``settings`` describe, checked and locked (stream/data_dir.py)
    before it waits for a broker or joins its group; hold it while the worker runs."""
    try:
        return claim(settings)
    except SettingError as exc:
        setting_error(args, exc)


def faust_options(args: argparse.Namespace) -> list[str]:
    """Faust worker options given on the command line, passed on to Faust."""
    return ["--logfile", args.logfile] if args.logfile else []
