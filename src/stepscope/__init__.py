"""stepscope: observability and cost analytics for AI agents.

The top-level package holds the command line and the plumbing every part shares:
configuration, time parsing, output formatting and access to the store.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stepscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
