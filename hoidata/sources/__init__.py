"""Readers of raw annotation formats. Each turns one file into a :class:`SourceBatch`."""

from hoidata.sources.base import SourceBatch

__all__ = ["SourceBatch"]
