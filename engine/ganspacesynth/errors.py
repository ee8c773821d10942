"""Errors a musician or a script can act on.

Every error the engine raises for bad input is one of these, with a message
that names the file and the problem, so that the CLI, the Pd external and the
pyext class can show it as it is, without a traceback.
"""


class GanspacesynthError(Exception):
    """Base class: bad input to the engine (never a bug in it)."""


class ModelError(GanspacesynthError):
    """A model folder or checkpoint that cannot be loaded."""


class PCAError(GanspacesynthError):
    """A PCA file that cannot be read or does not fit the model."""
