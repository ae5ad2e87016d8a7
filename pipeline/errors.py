"""Error classes that decide what happens to an object.

``BadObject`` is permanent: retrying cannot fix a corrupt file, so the object is
dead-lettered with the reason. What every other error means is decided in one place,
``pipeline.policy.classify``.
"""


class TrailpipeError(Exception):
    """Base class for trailpipe's own errors."""


class BadObject(TrailpipeError):
    """The object can never be ingested as it is (corrupt gzip, not JSON, no Records...)."""

    def __init__(self, reason: str, error_class: str = "BadObject"):
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


class Backpressure(TrailpipeError):
    """The stream stayed above its high watermark: try again later (transient, nothing lost)."""


class ConfigError(TrailpipeError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
