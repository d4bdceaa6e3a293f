"""External engines behind small interfaces: the container engine (Docker) that environment
images are built with and run points in.

`ContainerEngine` is the interface; `repro.engines.docker_engine.DockerEngine` its one
implementation, imported where it is made so that importing this package loads no SDK.
"""

from __future__ import annotations

from repro.engines.container_engine import (
    Container,
    ContainerEngine,
    ContainerRefusedError,
    ContainerSpec,
    ContainerState,
    ImageInfo,
    Mount,
    Stream,
)

__all__ = [
    "Container",
    "ContainerEngine",
    "ContainerRefusedError",
    "ContainerSpec",
    "ContainerState",
    "ImageInfo",
    "Mount",
    "Stream",
]
