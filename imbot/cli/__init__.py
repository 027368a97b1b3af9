"""The ``imbot`` command line: one module per command (run, dev, sim, chat, setup).

Nothing in imbot imports this package; it is the outermost layer.
"""

from imbot.cli.main import main

__all__ = ["main"]
