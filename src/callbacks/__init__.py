from src.callbacks.run_marker import RunMarker
from src.callbacks.schedules import ScheduleCallback

__all__ = ["RunMarker", "ScheduleCallback"]
