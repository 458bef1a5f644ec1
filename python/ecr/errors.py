"""The library's typed errors (include/ecr/core/error.hpp) as Python exceptions.

Every failure a caller can provoke with bad input (a file, a tensor, a dialog) is an
``ecr.Error`` whose class says what went wrong and whose message names the file, tensor or
field. The subclasses also derive from the built-in exception a Python caller would reach for
first: bad input is a ``ValueError``, a refusal of the operating system an ``OSError``.
"""


class Error(Exception):
    """Base of every error the library raises."""


class FormatError(Error):
    """A file is not what it claims to be (magic, bounds, checksum, JSON)."""


class ShapeError(Error):
    """A tensor's shape or dtype differs from what the model needs."""


class InputError(Error, ValueError):
    """A request is malformed (empty dialog, unknown entity, invalid UTF-8)."""


class IoError(Error, OSError):
    """The operating system refused (open, read, map)."""


class DeviceError(Error):
    """CUDA reported a failure, or the device asked for is not available."""


class ConfigError(Error):
    """An option or a bundle's metadata asks for something unsupported."""


__all__ = ["Error", "FormatError", "ShapeError", "InputError", "IoError", "DeviceError", "ConfigError"]
