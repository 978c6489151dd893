"""CliError: what a command refuses as a usage problem, said in one line with exit status 2."""

__all__ = ["CliError"]


class CliError(Exception):
    """A problem to report in one line, with exit status 2."""
