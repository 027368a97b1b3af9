"""The docs gate: ``docs/_ext/strict_build.py`` builds with Zensical and fails on any warning.

Each test builds a one-page site in a temporary folder with the same mkdocstrings setup as
``mkdocs.yml`` (the griffe extension included), so the real toolchain runs, in about a second.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "docs" / "_ext" / "strict_build.py"
EXTENSION = REPO_ROOT / "docs" / "_ext" / "griffe_examples.py"

MODULE = '''"""A module to document."""


class Base:
    """The base class."""

    def feed(self, event: str) -> bool:
        """Take one event.

        Example:
            >>> Child().feed("hi")
            True

        Args:
            event: the event.{extra_arg}

        Returns:
            Always ``True``.
        """
        return True


class Child(Base):
    """A subclass that adds nothing."""
'''

PAGE = """# Reference

See [the other page](other.md{link_suffix}).

::: minidoc.Child
    options:
      inherited_members: true
"""


def make_site(root: Path, *, extra_arg: str = "", link_suffix: str = "") -> Path:
    (root / "minidoc.py").write_text(MODULE.format(extra_arg=extra_arg), encoding="utf-8")
    docs = root / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(PAGE.format(link_suffix=link_suffix), encoding="utf-8")
    (docs / "other.md").write_text("# Other\n\n## Known heading\n", encoding="utf-8")
    config = root / "mkdocs.yml"
    config.write_text(
        f"""site_name: minidoc
strict: true
theme:
  name: material
markdown_extensions:
  - pymdownx.highlight
  - pymdownx.superfences
plugins:
  - mkdocstrings:
      handlers:
        python:
          paths: [.]
          options:
            show_root_heading: true
            docstring_style: google
            extensions:
              - {EXTENSION}:ExampleSections
""",
        encoding="utf-8",
    )
    return config


def build(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--config-file", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_clean_site_builds_with_inherited_members_and_examples_as_code(tmp_path: Path) -> None:
    result = build(make_site(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    # inherited_members carries over: Child's page documents the method it inherits.
    assert 'id="minidoc.Child.feed"' in page
    # The griffe extension ran: ``Example:`` became an Examples section with a code block.
    assert "Examples:" in page
    assert '<span class="gp">&gt;&gt;&gt; </span>' in page


def test_a_griffe_warning_fails_the_build(tmp_path: Path) -> None:
    """``zensical build --strict`` prints this warning and exits 0; the script must not."""
    result = build(make_site(tmp_path, extra_arg="\n            ghost: not in the signature."))
    assert result.returncode == 1
    assert "Parameter 'ghost' does not appear in the function signature" in result.stderr
    assert "warning(s) while rendering" in result.stderr


@pytest.mark.parametrize(
    ("link_suffix", "problem"),
    [("#no-such-heading", "anchor does not exist"), ("#known-heading", None)],
    ids=["broken-anchor", "good-anchor"],
)
def test_links_and_anchors_are_checked(
    tmp_path: Path, link_suffix: str, problem: str | None
) -> None:
    result = build(make_site(tmp_path, link_suffix=link_suffix))
    output = result.stdout + result.stderr
    if problem is None:
        assert result.returncode == 0, output
    else:
        assert result.returncode == 1
        assert problem in output
        assert "build aborted" in result.stderr


def test_a_link_to_a_missing_page_fails_the_build(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8").replace("other.md", "gone.md"))
    result = build(config)
    assert result.returncode == 1
    assert "page does not exist" in result.stdout + result.stderr


def test_the_readme_ci_and_dev_extra_name_the_zensical_toolchain() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "(`.venv/bin/zensical serve`)" in readme
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ".venv/bin/python docs/_ext/strict_build.py" in ci
    commands = [line for line in ci if not line.lstrip().startswith("#")]
    assert not [line for line in commands if "mkdocs" in line.lower()]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dev = [
        req.split("=")[0].split(">")[0]
        for req in pyproject["project"]["optional-dependencies"]["dev"]
    ]
    assert "zensical" in dev
    assert "mkdocs-material" not in dev
