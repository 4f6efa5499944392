from src.callbacks.preemption import PreemptionCheckpoint, StepSeed
from src.callbacks.run_marker import RunMarker
from src.callbacks.schedules import ScheduleCallback

__all__ = ["PreemptionCheckpoint", "RunMarker", "ScheduleCallback", "StepSeed"]
