"""Video data: list files, frame sampling, readers, clip transforms, the DataModule, the built-in dataset."""

from src.data.datamodule import DataConfigError, VideoDataModule
from src.data.lists import ListFormatError

__all__ = ["DataConfigError", "ListFormatError", "VideoDataModule"]
