"""Errors a user can act on. The CLI prints their message and exits with their ``exit_code``."""


class QadaptError(Exception):
    exit_code = 1


class ConfigError(QadaptError):
    """Bad command-line input: unknown group option, unknown key, malformed override."""

    exit_code = 2


class DataMissing(QadaptError):
    """A dataset file is not in the data directory."""


class ModelUnavailable(QadaptError):
    """Model weights cannot be found or downloaded."""


class TrainingDiverged(QadaptError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(QadaptError):
    """Ctrl-C during training: the message says at which step, and what resumes it."""

    exit_code = 130
