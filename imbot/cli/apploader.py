"""Find the ``Bot`` an ``APP`` argument names: ``path/to/file.py[:attr]`` or ``module[:attr]``.

Used by ``imbot run`` and ``imbot dev``. Every failure is an ``AppError`` whose one-line
message names the file and the fix, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from imbot.errors import AppError

if TYPE_CHECKING:
    from imbot.bot.bot import Bot

__all__ = [
    "AppError",
    "AppSpec",
    "LoadedApp",
    "add_app_argument",
    "derive_handle",
    "load_app",
    "parse_app",
]

DEFAULT_ATTR = "bot"
"""The attribute an APP without ``:attr`` names."""

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed APP argument.

    Attributes:
        text: the argument as given.
        path: the Python file, for the ``file.py`` form; ``None`` for a module name.
        module: the module name, for the ``package.module`` form; ``None`` for a file.
        attr: the attribute holding the ``Bot``.
    """

    text: str
    path: Path | None
    module: str | None
    attr: str


@dataclass(frozen=True, slots=True)
class LoadedApp:
    """A loaded APP: the ``Bot`` and where its source lives.

    Attributes:
        spec: the parsed argument.
        bot: the ``Bot`` instance.
        source: the file that defines it.
    """

    spec: AppSpec
    bot: Bot
    source: Path

    @property
    def handle(self) -> str:
        """The bot's handle (``Bot(handle=)`` / ``IMBOT_HANDLE``), else one from the file name."""
        if self.bot.handle:
            return self.bot.handle
        name = self.spec.module.rpartition(".")[2] if self.spec.module else self.source.stem
        return derive_handle(name)


def add_app_argument(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``APP`` argument (``imbot run`` and ``imbot dev`` take it)."""
    parser.add_argument(
        "app",
        metavar="APP",
        help="the bot: path/to/file.py or package.module, optionally :attribute "
        "(default attribute: bot)",
    )


def parse_app(text: str) -> AppSpec:
    """Split an APP argument into a file or a module, and an attribute.

    Example:
        >>> parse_app("examples/echo.py").attr
        'bot'
        >>> parse_app("mypkg.bots:support").module
        'mypkg.bots'

    Raises:
        AppError: the argument is empty or the attribute is not an identifier.
    """
    raw = text.strip()
    if not raw:
        raise AppError("APP is empty; give a file such as bot.py or a module such as pkg.bot:bot")
    target, attr = raw, DEFAULT_ATTR
    # "C:\x.py" has a colon too, but imbot targets POSIX; the last colon splits the attribute.
    head, sep, tail = raw.rpartition(":")
    if sep and head and not tail.startswith(("/", "\\")):
        target, attr = head, tail
    if not attr.isidentifier():
        raise AppError(f"{raw}: {attr!r} is not a Python name; write APP as file.py:name")
    looks_like_file = target.endswith(".py") or os.sep in target or "/" in target
    if looks_like_file:
        return AppSpec(raw, Path(target), None, attr)
    if not _MODULE_NAME.match(target):
        raise AppError(f"{raw}: not a .py file or a module name; write APP as file.py or pkg.mod")
    return AppSpec(raw, None, target, attr)


def _where(exc: BaseException, source: Path | None) -> str:
    """The most useful ``file:line`` for an exception raised while importing user code."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if source is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == source.resolve()]
        if mine:
            return f"{mine[-1].filename}:{mine[-1].lineno}"
    user = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
    if user:
        return f"{user[-1].filename}:{user[-1].lineno}"
    return ""


def _import_failed(spec: AppSpec, exc: BaseException, source: Path | None) -> AppError:
    where = _where(exc, source)
    at = f" at {where}" if where else ""
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return AppError(f"cannot import {spec.text}: {summary}{at}; fix it and try again")


def _import_file(spec: AppSpec) -> tuple[ModuleType, Path]:
    assert spec.path is not None
    path = spec.path.expanduser()
    if not path.is_file():
        hint = "" if path.suffix == ".py" else " (a module name has no '/'; a file ends in .py)"
        raise AppError(f"no such file: {spec.path}{hint}; check the APP path")
    path = path.resolve()
    folder = str(path.parent)
    # Like `python file.py`: the file's folder comes first, so its sibling modules import.
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem if path.stem.isidentifier() else "imbot_app"
    if name in sys.modules:
        name = f"imbot_app_{name}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AppError(f"cannot import {spec.text}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_failed(spec, exc, path) from exc
    return module, path


def _import_module(spec: AppSpec) -> tuple[ModuleType, Path]:
    assert spec.module is not None
    # Like `python -m`: the current folder is importable.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name and spec.module.startswith(exc.name):
            raise AppError(
                f"no module named {exc.name!r} (from APP {spec.text}); run from the folder "
                "that contains it, or give a file path such as path/to/bot.py"
            ) from exc
        raise _import_failed(spec, exc, None) from exc
    except Exception as exc:
        raise _import_failed(spec, exc, None) from exc
    file = getattr(module, "__file__", None)
    if not file:
        raise AppError(f"{spec.text}: module {spec.module!r} has no source file")
    return module, Path(file).resolve()


def load_app(text: str) -> LoadedApp:
    """Import the APP and return its ``Bot``.

    Example:
        >>> app = load_app("examples/echo.py")
        >>> app.handle
        'echo'

    Raises:
        AppError: the file or module is missing, fails to import, or has no ``Bot`` at
            the attribute.
    """
    spec = parse_app(text)
    module, source = _import_file(spec) if spec.path is not None else _import_module(spec)
    from imbot.bot.bot import Bot

    where = spec.path if spec.path is not None else spec.module
    if not hasattr(module, spec.attr):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, Bot))
        if found:
            hint = f"it has {', '.join(found)}: use {where}:{found[0]}"
        else:
            hint = f"create one there: {spec.attr} = Bot()"
        raise AppError(f"{where} has no Bot named {spec.attr!r}; {hint}")
    bot = getattr(module, spec.attr)
    if not isinstance(bot, Bot):
        raise AppError(
            f"{where}:{spec.attr} is not an imbot.Bot (its type is {type(bot).__name__}); "
            f"point APP at the Bot (file.py:name)"
        )
    return LoadedApp(spec, bot, source)


def derive_handle(name: str) -> str:
    """Turn a file or module name into a valid agent handle.

    Example:
        >>> derive_handle("Echo_Bot")
        'echo_bot'

    Args:
        name: a file stem or module name.

    Returns:
        Lowercase letters, digits, ``-``, ``_`` and ``.``; starts with a letter or digit;
        ``bot`` when nothing usable is left.
    """
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-_.")
    return cleaned[:63] or "bot"
