"""The errors of pipelines: defining, loading and running them.

PipelineError  A pipeline could not be defined, loaded or run
    PipelineDefinitionError  A pipeline or step is malformed (cycle, unknown input, dup...
    PipelineLoadError  A pipeline file could not be imported, or holds no (or several)...
    PipelineParamError  A pipeline parameter is missing, unknown, or of the wrong type
    StepOutputError  A step returned a value loopline cannot store safely
    PipelineRunNotFoundError  No pipeline run with that id (to resume from)
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class PipelineError(LooplineError):
    """A pipeline could not be defined, loaded or run."""


class PipelineDefinitionError(PipelineError):
    """A pipeline or step is malformed (cycle, unknown input, duplicate name...)."""


class PipelineLoadError(PipelineError):
    """A pipeline file could not be imported, or holds no (or several) pipelines."""


class PipelineParamError(PipelineError, ConfigError):
    """A pipeline parameter is missing, unknown, or of the wrong type (bad usage: also a
    ConfigError, the CLI exits 2)."""


class StepOutputError(PipelineError):
    """A step returned a value loopline cannot store safely."""


class PipelineRunNotFoundError(PipelineError):
    """No pipeline run with that id (to resume from)."""
