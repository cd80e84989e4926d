"""Errors that the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations


class VocalmixError(Exception):
    """A failure the user can act on; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InputError(VocalmixError):
    """Bad input from the user: a file, a setting or an option (exit code 2)."""

    exit_code = 2


class AudioFileError(InputError):
    """An audio file that cannot be used; the message names the file."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SettingsError(InputError):
    """Settings that are malformed or out of range; the message names the field."""
