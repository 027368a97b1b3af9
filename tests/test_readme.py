"""The README's promises: two copy-paste commands that work, and a bot that is the real example."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' "
    "&& .venv/bin/python -m pytest -n auto"
)
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def fences(language: set[str]) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang in language]


def shell_commands() -> list[str]:
    blocks = fences(SHELL_LANGUAGES)
    assert all(len(block.strip().splitlines()) == 1 for block in blocks), blocks
    return [block.strip() for block in blocks]


def test_exactly_two_shell_commands_and_no_other_untyped_fences() -> None:
    assert len(shell_commands()) == 2
    languages = {lang for lang, _ in FENCE.findall(README)}
    assert languages <= SHELL_LANGUAGES | {"python"}, languages


def test_the_test_command_is_the_one_ci_runs() -> None:
    assert shell_commands()[1] == TEST_COMMAND
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()


def test_the_demo_command_installs_and_starts_an_example_that_exists() -> None:
    demo = shell_commands()[0]
    steps = [shlex.split(step) for step in demo.split("&&")]
    assert steps[0] == ["python3", "-m", "venv", ".venv"]
    assert steps[1][:3] == [".venv/bin/pip", "install", "-e"]
    assert steps[-1][:2] == [".venv/bin/imbot", "dev"]
    app = steps[-1][2]
    assert "imbot dev examples/echo.py" in demo
    assert (REPO_ROOT / app).is_file()


def test_the_bot_in_the_readme_is_examples_echo_in_under_ten_lines() -> None:
    bot = fences({"python"})[0]
    code_lines = [line for line in bot.splitlines() if line.strip()]
    assert len(code_lines) < 10
    example = (REPO_ROOT / "examples" / "echo.py").read_text(encoding="utf-8")
    module = ast.parse(example)
    body = module.body[1:] if ast.get_docstring(module) else module.body
    assert ast.dump(ast.Module(body=body, type_ignores=[])) == ast.dump(ast.parse(bot))


def test_every_python_snippet_compiles() -> None:
    for snippet in fences({"python"}):
        compile(snippet, "README.md", "exec")


def test_local_links_and_the_screenshot_exist() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [t for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert "docs/assets/chat-page.png" in local
    missing = [t for t in local if not (REPO_ROOT / t.split("#")[0]).exists()]
    assert missing == []


def test_license_is_mit() -> None:
    assert "## License" in README
    assert "MIT" in README.split("## License", 1)[1]
    assert (REPO_ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
