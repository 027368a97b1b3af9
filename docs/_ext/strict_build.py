"""Build the documentation with Zensical and fail on any warning: the docs gate of ``.ci/run``.

``zensical build --strict`` aborts on what Zensical's own validation finds (a link to a missing
page or anchor, an unresolved cross-reference, an object mkdocstrings cannot collect) but not on
warnings logged on the Python side while a page renders: griffe's (a documented parameter that
is not in the signature, a parameter without a type), mkdocstrings' and the Markdown
extensions'. Zensical prints those and carries on; MkDocs' strict mode counted them, and this
script does too.

Usage, from anywhere::

    .venv/bin/python docs/_ext/strict_build.py            # the site in mkdocs.yml
    .venv/bin/python docs/_ext/strict_build.py -f CONFIG  # another project

The build always starts from a clean cache: a page served from the cache renders nothing, and
so would log none of its warnings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import zensical

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Counter(logging.Handler):
    """Print each warning as it comes and count them."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s  %(message)s  [%(name)s]"))
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count ``record`` and print it to stderr."""
        self.count += 1
        print(self.format(record), file=sys.stderr, flush=True)


def build(config_file: Path) -> int:
    """Build the site described by ``config_file`` strictly.

    Args:
        config_file: a ``mkdocs.yml`` or ``zensical.toml``; relative paths in it (the griffe
            extension, ``docs_dir``, ``site_dir``) are read from its folder.

    Returns:
        The exit status: 0 when the build finished with no warning, 1 otherwise.
    """
    config_file = config_file.resolve()
    # mkdocstrings resolves its search paths and extension files from the working directory.
    os.chdir(config_file.parent)
    counter = _Counter()
    # Zensical sets up no logging; without a handler Python would print these and move on.
    logging.getLogger().addHandler(counter)
    try:
        zensical.build(str(config_file), {"strict": True, "clean": True})
    except RuntimeError as error:
        # Zensical has printed the issues; its exception only says that it stopped.
        print(f"docs: build aborted: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        logging.getLogger().removeHandler(counter)
    if counter.count:
        print(f"docs: {counter.count} warning(s) while rendering; strict mode", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and build; see the module docstring."""
    parser = argparse.ArgumentParser(description="Build the docs with Zensical, strictly.")
    parser.add_argument(
        "-f",
        "--config-file",
        type=Path,
        default=REPO_ROOT / "mkdocs.yml",
        help="the site's configuration (default: the repository's mkdocs.yml)",
    )
    return build(parser.parse_args(argv).config_file)


if __name__ == "__main__":
    sys.exit(main())
