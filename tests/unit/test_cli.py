"""The ``imbot`` command line in-process: help, APP loading, and one-line errors (exit 2)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imbot.cli.apploader import AppError, derive_handle, load_app, parse_app
from imbot.cli.chat import Transcript
from imbot.cli.dev import SourceWatcher
from imbot.cli.main import build_parser, main
from imbot.cli.setup import read_secret, save_secret

COMMANDS = ["run", "dev", "sim", "chat", "setup", "dead-letters"]

ECHO = """\
from imbot import Bot

bot = Bot()


@bot.on_message()
async def echo(ctx):
    await ctx.reply(ctx.text)
"""


@pytest.fixture(autouse=True)
def _restore_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loading an APP puts its folder on sys.path and its module in sys.modules; undo that."""
    path, modules = list(sys.path), set(sys.modules)
    temporary = str(tmp_path_factory.getbasetemp())
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(temporary):
            del sys.modules[name]


def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"imbot {command}: error: ")
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- help


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in out or f"    {command}\n" in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: imbot {command}" in capsys.readouterr().out


def test_documented_flags_and_defaults() -> None:
    parser = build_parser()
    run = parser.parse_args(["run", "bot.py"])
    assert (run.host, run.port, run.path) == ("127.0.0.1", 8000, "/webhook")
    dev = parser.parse_args(["dev", "bot.py"])
    assert (dev.port, dev.bot_port, dev.db, dev.admin_key, dev.no_reload) == (
        8787,
        8788,
        os.path.join(".imbot", "sim.sqlite3"),
        None,
        False,
    )
    chat = parser.parse_args(["chat"])
    assert (chat.url, chat.phone, chat.to) == ("http://127.0.0.1:8787", "+15551234567", None)
    setup = parser.parse_args(["setup", "--url", "https://x.example/webhook"])
    assert setup.key_file == Path(".imbot") / "signing-key"
    assert not setup.print_signing_key


def test_setup_requires_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["setup"])
    assert exit_.value.code == 2
    assert "--url" in capsys.readouterr().err


def test_every_command_module_has_the_same_shape() -> None:
    import importlib

    # The package exports the function main, which hides the module of the same name.
    modules = importlib.import_module("imbot.cli.main").COMMANDS
    names = [module.__name__.rpartition(".")[2].replace("_", "-") for module in modules]
    assert names == COMMANDS  # the order --help lists them in
    for command in modules:
        assert callable(command.add_parser) and callable(command.run)


def test_building_the_parser_leaves_the_work_unimported() -> None:
    """Every command's parser is built for every command, so it must import little."""
    import subprocess

    heavy = ("imbot.bot", "imbot.sim", "imbot.client", "imbot.models", "aiohttp", "pydantic")
    code = (
        "import sys; from imbot.cli.main import build_parser; build_parser(); "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("imbot 0.")


# --------------------------------------------------------------------------- APP loading


def test_parse_app_forms() -> None:
    spec = parse_app("examples/echo.py")
    assert (spec.path, spec.module, spec.attr) == (Path("examples/echo.py"), None, "bot")
    spec = parse_app("examples/echo.py:support")
    assert (spec.path, spec.module, spec.attr) == (Path("examples/echo.py"), None, "support")
    spec = parse_app("mypkg.bots:helper")
    assert (spec.path, spec.module, spec.attr) == (None, "mypkg.bots", "helper")
    assert parse_app("mypkg").attr == "bot"
    with pytest.raises(AppError, match="not a Python name"):
        parse_app("bot.py:1x")
    with pytest.raises(AppError, match=r"not a \.py file or a module name"):
        parse_app("not a module")
    with pytest.raises(AppError, match="empty"):
        parse_app("  ")


def test_derive_handle() -> None:
    assert derive_handle("echo") == "echo"
    assert derive_handle("My Bot!") == "my-bot"
    assert derive_handle("_private_") == "private"
    assert derive_handle("???") == "bot"
    assert len(derive_handle("x" * 100)) == 63


def test_load_app_from_a_file_and_its_handle(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("REPLY = 'hi'\n")
    app = tmp_path / "Echo_Bot.py"
    app.write_text("import helper\n" + ECHO)
    loaded = load_app(str(app))
    assert loaded.source == app.resolve()
    assert loaded.handle == "echo_bot"
    assert type(loaded.bot).__name__ == "Bot"


def test_load_app_handle_prefers_the_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "a.py"
    app.write_text(ECHO.replace("Bot()", 'Bot(handle="front-desk")'))
    assert load_app(str(app)).handle == "front-desk"
    other = tmp_path / "b.py"
    other.write_text(ECHO)
    monkeypatch.setenv("IMBOT_HANDLE", "from-env")
    assert load_app(str(other)).handle == "from-env"


def test_load_app_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "cli_pkg_under_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "support_bot.py").write_text(
        ECHO.replace("bot = Bot()", "helper = Bot()").replace("@bot.", "@helper.")
    )
    monkeypatch.chdir(tmp_path)
    loaded = load_app("cli_pkg_under_test.support_bot:helper")
    assert loaded.handle == "support_bot"
    assert loaded.source == (package / "support_bot.py").resolve()


@pytest.mark.parametrize(
    ("source", "attr", "expected"),
    [
        (None, "", r"no such file: .*missing\.py; check the APP path"),
        ("x = (\n", "", r"cannot import .*: SyntaxError: .* at .*app\.py:1; fix it"),
        ("import json\nraise RuntimeError('boom')\n", "", r"RuntimeError: boom at .*app\.py:2"),
        ("import not_a_module_anywhere\n", "", r"ModuleNotFoundError: No module named"),
        ("x = 1\n", "", r"has no Bot named 'bot'; create one there: bot = Bot\(\)"),
        (
            ECHO.replace("bot = Bot()", "mybot = Bot()").replace("@bot", "@mybot"),
            "",
            r"has no Bot named 'bot'; it has mybot: use .*app\.py:mybot",
        ),
        ("x = 1\n", ":x", r"app\.py:x is not an imbot\.Bot \(its type is int\)"),
    ],
)
@pytest.mark.parametrize("command", ["run", "dev"])
def test_bad_apps_fail_in_one_line_with_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    source: str | None,
    attr: str,
    expected: str,
) -> None:
    import re

    app = tmp_path / ("missing.py" if source is None else "app.py")
    if source is not None:
        app.write_text(source)
    # With reloading, `imbot dev` waits for a save instead (tests/scenarios/test_dev.py).
    flags = ["--no-reload"] if command == "dev" and source is not None else []
    assert main([command, str(app) + attr, *flags]) == 2
    assert re.search(expected, one_line_error(capsys, command))


def test_unknown_module_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_module_here:bot"]) == 2
    line = one_line_error(capsys, "run")
    assert "no module named 'no_such_module_here'" in line


# --------------------------------------------------------------------------- chat / setup / sim


def test_chat_rejects_a_bad_phone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--phone", "555"]) == 2
    assert "--phone must be an E.164 number" in one_line_error(capsys, "chat")


def test_chat_without_a_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["chat", "--url", f"http://127.0.0.1:{port}"]) == 2
    line = one_line_error(capsys, "chat")
    assert f"cannot reach the simulator at http://127.0.0.1:{port}" in line
    assert "imbot dev" in line


def test_setup_without_an_api_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--url", "https://bot.example/webhook", "--handle", "x"]) == 2
    line = one_line_error(capsys, "setup")
    assert "no Inkbox API key: set INKBOX_API_KEY" in line


def test_setup_rejects_a_url_that_is_not_http(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--url", "bot.example/webhook"]) == 2
    assert "--url must be an https:// URL" in one_line_error(capsys, "setup")


def test_sim_rejects_a_bad_triage_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--triage-number", "555", "--db", ":memory:"]) == 2
    assert "triage_number must be E.164" in one_line_error(capsys, "sim")


# --------------------------------------------------------------------------- one-line errors


def test_a_missing_signing_key_says_how_to_get_one() -> None:
    from imbot.cli._common import explain
    from imbot.errors import ConfigError, MissingSigningKey

    assert issubclass(MissingSigningKey, ConfigError)
    line = explain(MissingSigningKey("no webhook signing key: set IMBOT_SIGNING_KEY"))
    assert line == (
        "no webhook signing key: set IMBOT_SIGNING_KEY; "
        "`imbot setup --url https://<public>/webhook` saves one"
    )
    # Told by its type, not its text: another setting's error gets no such hint.
    assert explain(ConfigError("no webhook signing key, says the text")) == (
        "no webhook signing key, says the text"
    )


def test_a_port_that_cannot_be_bound_is_explained_from_its_errno() -> None:
    import errno

    from imbot.cli._common import explain
    from imbot.net import cannot_listen

    taken = OSError(errno.EADDRINUSE, "Address already in use")
    assert explain(taken, host="0.0.0.0", port=8000) == (
        "port 8000 on 0.0.0.0 is already in use; stop the other process or pick another "
        "port with --port (--port 0 picks a free one)"
    )
    # The bot's own error (already a sentence) is said once, not nested in another.
    denied = cannot_listen("127.0.0.1", 80, PermissionError(errno.EACCES, "Permission denied"))
    assert explain(denied, port=80) == "cannot listen on 127.0.0.1:80: Permission denied"


def test_the_error_types_live_in_the_error_tree() -> None:
    import imbot.errors
    from imbot.cli.chat import ChatError
    from imbot.cli.dev import DevError

    assert AppError is imbot.errors.AppError
    assert ChatError is imbot.errors.ChatError
    assert DevError is imbot.errors.DevError
    for error in (AppError, ChatError, DevError):
        assert issubclass(error, imbot.errors.SetupError)


# --------------------------------------------------------------------------- small parts


def test_source_watcher_sees_saves_new_files_and_removals(tmp_path: Path) -> None:
    app = tmp_path / "bot.py"
    app.write_text("a = 1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    watcher = SourceWatcher(app)
    assert watcher.changed() == []
    app.write_text("a = 22\n")
    assert watcher.changed() == [app]
    assert watcher.changed() == []
    helper = tmp_path / "helper.py"
    helper.write_text("")
    assert watcher.changed() == [helper]
    (tmp_path / "notes.txt").write_text("still ignored")
    assert watcher.changed() == []
    helper.unlink()
    assert watcher.changed() == [helper]


def test_transcript_prints_each_thing_once() -> None:
    lines: list[str] = []
    t = Transcript(lines.append)
    mine = {"id": "m1", "thread": "echo", "from": "me", "text": "hi", "status": "delivered"}
    t.item(mine)
    t.item(mine)
    t.item({**mine, "status": "read"})
    t.typing({"thread": "echo", "typing": True})
    t.typing({"thread": "echo", "typing": True})
    loved = {
        **mine,
        "status": "read",
        "reactions": [{"id": "r1", "from": "them", "reaction": "love"}],
    }
    t.item(loved)
    t.item(loved)
    t.item({"id": "t1", "thread": "echo", "from": "them", "text": "yo", "status": "delivered"})
    t.item(
        {
            "id": "t1",
            "thread": "echo",
            "from": "them",
            "text": "yo",
            "status": "delivered",
            "reactions": [{"id": "r2", "from": "me", "reaction": "like"}],
        }
    )
    t.item(
        {"id": "t2", "thread": "router", "from": "them", "text": "Connected", "status": "delivered"}
    )
    t.thread({"thread": "echo", "status": "active"})
    t.thread({"thread": "echo", "status": "active"})
    t.thread({"thread": "echo", "status": "released"})
    assert lines == [
        "  ✓ Delivered: “hi”",
        "  ✓ Read: “hi”",
        "… @echo is typing",
        "@echo loved “hi”",
        "@echo: yo",
        "router: Connected",
        "— connected to @echo",
        "— @echo ended the conversation",
    ]


def test_transcript_names_the_agent_that_tapbacked_a_connect_text() -> None:
    lines: list[str] = []
    t = Transcript(lines.append)
    t.seen({"id": "c", "thread": "router", "from": "me", "text": "connect @echo", "status": "read"})
    t.item(
        {
            "id": "c",
            "thread": "router",
            "from": "me",
            "text": "connect @echo",
            "status": "read",
            "reactions": [{"id": "r", "from": "them", "reaction": "custom", "custom_emoji": "🎉"}],
        }
    )
    assert lines == ["@echo reacted 🎉 to “connect @echo”"]


def test_save_secret_is_private_and_ignored_by_git(tmp_path: Path) -> None:
    path = tmp_path / ".imbot" / "signing-key"
    save_secret(path, "whsec_one")
    assert read_secret(path) == "whsec_one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (path.parent / ".gitignore").read_text() == "*\n"
    path.chmod(0o644)
    save_secret(path, "whsec_two")
    assert read_secret(path) == "whsec_two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(tmp_path / "nothing") is None


def test_dev_checks_its_ports_before_starting_anything() -> None:
    """Issue 14, item 11: one taken port is named with a free one to use; the same port twice
    is refused (both servers could not bind it)."""
    import re
    import socket

    from imbot.cli.devstart import probe_ports
    from imbot.errors import DevError

    with pytest.raises(DevError, match="--port and --bot-port are both 8800"):
        probe_ports(8800, 8800)
    assert probe_ports(0, 0) > 0  # the bot's free port, chosen now
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DevError) as caught:
            probe_ports(0, port)
    assert re.fullmatch(
        rf"port {port} on 127\.0\.0\.1 is already in use; stop the other process or pick "
        r"another port with --bot-port: e\.g\. --bot-port \d+ \(free now; 0 picks a free one\)",
        str(caught.value),
    )
