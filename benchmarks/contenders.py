"""The imbot contender: ``imbot run benchmarks/echo_bot.py`` in its own process."""

from __future__ import annotations

import subprocess

from benchmarks import procs
from benchmarks.load import API_KEY, SECRET, Contender, Launch

ECHO_BOT = "benchmarks/echo_bot.py"

# Until the CLI has `imbot run`, a tiny launcher imports the bot and calls bot.run.
_LAUNCHER = (
    "import runpy, sys; "
    "bot = runpy.run_path(sys.argv[1])['bot']; "
    "bot.run(host='127.0.0.1', port=int(sys.argv[2]))"
)


def _cli_base() -> list[str]:
    venv_imbot = procs.REPO_ROOT / ".venv" / "bin" / "imbot"
    if venv_imbot.exists():
        return [str(venv_imbot)]
    return [procs.PYTHON, "-m", "imbot"]


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(
            argv,
            cwd=procs.REPO_ROOT,
            env=procs.child_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def bot_env(api_base: str) -> dict[str, str]:
    """Settings the echo bot reads: the stub as the API, the benchmark's key and secret."""
    return {
        "INKBOX_API_KEY": API_KEY,
        "INKBOX_BASE_URL": api_base,
        "IMBOT_SIGNING_KEY": SECRET,
        "IMBOT_HANDLE": "bench",
    }


def cli_has_run() -> bool:
    """Whether ``imbot run`` exists yet."""
    return _works(
        [
            procs.PYTHON,
            "-c",
            "import sys; from imbot.cli import main; sys.exit(main())",
            "run",
            "--help",
        ]
    )


def imbot_contender() -> Contender | str:
    """The imbot echo bot, or why it cannot run yet."""
    if not _works([procs.PYTHON, "-c", "from imbot import Bot"]):
        return "imbot.Bot is not available yet (`from imbot import Bot` fails)"
    cli = _cli_base()
    if cli_has_run() and _works([*cli, "run", "--help"]):

        def launch_cli(port: int, api_base: str) -> Launch:
            return Launch(
                [*cli, "run", ECHO_BOT, "--host", "127.0.0.1", "--port", str(port)],
                bot_env(api_base),
            )

        return Contender("imbot", launch_cli, note="imbot run")

    def launch(port: int, api_base: str) -> Launch:
        return Launch([procs.PYTHON, "-c", _LAUNCHER, ECHO_BOT, str(port)], bot_env(api_base))

    return Contender("imbot", launch, note="python -c launcher (no `imbot run` yet)")
