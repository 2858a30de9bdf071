"""The error hierarchy. Every user-facing failure is an EdgekitError whose message says what to do.

The CLI turns these into a one-line ``Error: ...`` and exit status 1; anything else is a bug and keeps its traceback.
"""


class EdgekitError(Exception):
    """A failure the user can fix; the message says what was wrong and what to do."""


class ConfigError(EdgekitError):
    """A malformed configuration file or option value (target profile, feature spec, ...)."""


class DataError(EdgekitError):
    """Input data that cannot be used: missing files, bad formats, inconsistent sample rates, empty datasets."""


class MissingDependencyError(EdgekitError):
    """An optional backend is not installed; the message names the extra that provides it."""


def require_module(module: str, extra: str):
    """Import ``module`` or raise a MissingDependencyError naming the edgekit extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'edgekit[{extra}]'"
        ) from exc


class BundleError(EdgekitError):
    """A bundle that cannot be written or trusted: a bad file name, a changed or missing file, a wrong signature."""
