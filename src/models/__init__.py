"""Video models: plain nn.Modules returning `VideoOutput`; `build_video_model` builds any of them."""

from src.models.factory import BACKBONES, METHODS, build_video_model
from src.models.output import VideoOutput

__all__ = ["BACKBONES", "METHODS", "VideoOutput", "build_video_model"]
