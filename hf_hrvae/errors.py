"""The errors a user mends from the message alone. The `examples/` scripts print one as `error: <message>` and exit
with status 1 (`hf_hrvae.scripts.run_script`); library callers get the exception itself, typed, with the built-in
exception it refines as a base (a `DataError` is a `ValueError`, a `ModelNotFoundError` a `FileNotFoundError`)."""


class UserError(Exception):
    """Base of the errors below: what was given cannot be used, and the message says what to change."""


class DataError(UserError, ValueError):
    """The data given cannot be used as it is (a missing split or file, no text, an ambiguous column)."""


class DatasetUnavailableError(UserError, RuntimeError):
    """The dataset could not be loaded (typically: the Hub is unreachable and no local copy was given)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint flag (`--resume_from_checkpoint`, `--checkpoint`) names no usable checkpoint of the trainer."""


class ModelNotFoundError(UserError, FileNotFoundError):
    """A model flag names neither a model folder nor (by its form) a Hub repository, or its files do not load."""


class OutputExistsError(UserError, FileExistsError):
    """The output folder already holds files that writing would mix with or overwrite."""


class EvaluationMismatchError(UserError, ValueError):
    """An evaluation file of a model folder was not measured on that folder's weights (or does not say so)."""


class HardwareError(UserError, RuntimeError):
    """This machine cannot run what was asked (e.g. bf16 autocast on a CPU whose oneDNN has no bf16 LSTM)."""


class HubError(UserError, RuntimeError):
    """The Hub refused or could not be reached (offline, no token, no permission, an invalid repository id)."""


__all__ = ["UserError", "DataError", "DatasetUnavailableError", "CheckpointNotFoundError", "ModelNotFoundError",
           "OutputExistsError", "EvaluationMismatchError", "HardwareError", "HubError"]
