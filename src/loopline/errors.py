"""The root of every error loopline raises, and the whole tree.

Each layer owns its family in ``<layer>/errors.py`` (the right column), with typed payloads:
a gate failure carries its verdict, a validation failure its report, a missing dataset
the names that exist. The classes here are the kinds every layer shares: any loopline
error, a configuration error (the CLI exits 2), stored data that fails verification
(exit 4), no project where one is expected. The CLI maps these base classes (and the
store's unavailable/full ones, exit 3) to exit codes, the server to HTTP statuses;
nothing else does.

Messages name the object, what was expected and the next step (``hint``). A class that
inherits two kinds (``PortInUseError`` is a serve error and a configuration error) is
listed under its first.

    LooplineError
        ConfigError
            ProjectConflictError                    store.errors
        ProjectError
        IntegrityError
        AlarmError                                  alarm.errors
            ActionConfigError                       alarm.errors (also ConfigError)
            EventNotFoundError                      alarm.errors
        DataError                                   data.errors
            IngestError                             data.errors
                SourceNotFoundError                 data.errors
                EmptySourceError                    data.errors
                FormatMismatchError                 data.errors
                EncodingError                       data.errors
                MalformedRowsError                  data.errors
                UnterminatedQuoteError              data.errors
                MixedTypesError                     data.errors
                DuplicateColumnsError               data.errors
                UnsupportedTypeError                data.errors
            ValidationFailedError                   data.errors
            DatasetNotFoundError                    data.errors
                DatasetVersionNotFoundError         data.errors
            DataArgumentError                       data.errors (also ConfigError)
        EvaluationError                             evaluate.errors
            GateSyntaxError                         evaluate.errors
            GateFailedError                         evaluate.errors
            EvaluationDocumentError                 evaluate.errors
            EvaluationInputError                    evaluate.errors
            EvaluationArgumentError                 evaluate.errors
        ExecutorError                               execute.errors
        LoopError                                   loop.errors
            LeaseLostError                          loop.errors
            RolloutNotFoundError                    loop.errors
            RolloutActiveError                      loop.errors
            LoopConfigError                         loop.errors (also ConfigError)
        MonitorError                                monitor.errors
            FeedbackError                           monitor.errors
            MonitorReferenceError                   monitor.errors
            MonitorArgumentError                    monitor.errors (also ConfigError)
        PipelineError                               pipeline.errors
            PipelineDefinitionError                 pipeline.errors
            PipelineLoadError                       pipeline.errors
            PipelineParamError                      pipeline.errors (also ConfigError)
            StepOutputError                         pipeline.errors
            PipelineRunNotFoundError                pipeline.errors
        RegistryError                               registry.errors
            ModelNotFoundError                      registry.errors
            ModelVersionNotFoundError               registry.errors
            AliasNotFoundError                      registry.errors
            ModelPackageError                       registry.errors
            ModelInputError                         registry.errors
            PackageIntegrityError                   registry.errors (also IntegrityError)
            MalformedPackageError                   registry.errors (also IntegrityError)
            FlavorUnavailableError                  registry.errors
            UnsafeModelError                        registry.errors
            ConflictError                           registry.errors
            PromotionRefusedError                   registry.errors
            InvalidRefError                         registry.errors (also ConfigError)
            RegistryArgumentError                   registry.errors (also ConfigError)
        ServeError                                  serve.errors
            UnsafeBindError                         serve.errors (also ConfigError)
            PortInUseError                          serve.errors (also ConfigError)
            ApiKeyError                             serve.errors
            ServeArgumentError                      serve.errors (also ConfigError)
            ModelLoadError                          serve.errors
        StoreError                                  store.errors
            MetadataStoreError                      store.errors
                DatabaseUnreachableError            store.errors
                SchemaError                         store.errors
                DatabaseFullError                   store.errors
                DatabaseIOError                     store.errors
            ObjectStoreError                        store.errors
                InvalidKeyError                     store.errors
                    InvalidDigestError              store.errors
                ObjectNotFoundError                 store.errors
                BlobIntegrityError                  store.errors (also IntegrityError)
                StoreUnreachableError               store.errors
                StoreFullError                      store.errors
        TrackingError                               tracking.errors
            RunNotFoundError                        tracking.errors
            ParamConflictError                      tracking.errors
            InvalidMetricError                      tracking.errors
            InvalidRunFilterError                   tracking.errors
            TrackingArgumentError                   tracking.errors (also ConfigError)
            RunEndedError                           tracking.errors
            ArtifactError                           tracking.errors
        TrainError                                  train.errors
            SearchSpaceError                        train.errors
            SearchNotFoundError                     train.errors
            SearchFailedError                       train.errors
            TrainArgumentError                      train.errors
            SearchStorageError                      train.errors
            TrialValueError                         train.errors
        TriggerError                                trigger.errors
            BatchInputError                         trigger.errors
            BatchOutputError                        trigger.errors
        UIError                                     ui.errors
            UnsafeUIBindError                       ui.errors (also ConfigError)
            PageNotFoundError                       ui.errors
            PageArgumentError                       ui.errors
"""

from __future__ import annotations

from typing import Any


class LooplineError(Exception):
    """Root of every loopline error.

    ``hint`` is the next thing the user should do (often a command to run).
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        sep = " " if self.message.endswith((".", "!", "?")) else ". "
        return f"{self.message}{sep}{self.hint}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take their own arguments; rebuild from the state instead, so an
        # error crosses a process boundary (a worker, a cluster task) with its payload.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[LooplineError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(LooplineError):
    """The configuration (``loopline.toml`` or a ``LOOPLINE_*`` variable) is invalid."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message, hint=hint)


class ProjectError(LooplineError):
    """No loopline project where one was expected, or one already exists."""


class IntegrityError(LooplineError):
    """Stored data does not match what was recorded for it: a blob whose sha256 differs, a
    model package file that is not what the registry holds, a split that no longer fits
    its dataset. The CLI exits 4. Each layer raises its own subclass, with the details."""
