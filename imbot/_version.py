"""The package version, in a leaf module so that nothing imports the facade for it."""

__version__ = "0.1.0"
