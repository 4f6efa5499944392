"""Dataset preparation: official annotation files + media -> this suite's lists, classes.txt and frame
folders. `python -m src.data.prepare <dataset> --src <official download> --out <dataset root>`."""

from src.data.prepare.build import SPECS, prepare

__all__ = ["SPECS", "prepare"]
