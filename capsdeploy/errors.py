"""The one exception type for errors a user can cause and fix."""

from __future__ import annotations


class CapsDeployError(Exception):
    """An error whose message tells the user what to do.

    ``exit_code`` follows the CLI convention: 2 for usage errors (bad flags,
    missing files the user must supply), 1 for failures at run time.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CapsDeployError):
    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


class InvalidInputError(UsageError):
    """A feed that does not fit the model: unknown or missing name, dtype, rank, shape, batch."""


class NotOnThisMachine(UsageError):
    """The engine needs what this machine's CPU lacks (bf16 arithmetic): refused where it is the
    one engine asked for, skipped with the reason where it is one of several being compared."""


class InferenceError(CapsDeployError):
    """The engine failed on inputs that passed every check (a bug, or the device)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=1)
