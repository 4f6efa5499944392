from src.callbacks.preemption import PreemptionCheckpoint, StepSeed
from src.callbacks.run_marker import RunMarker, RunRecord
from src.callbacks.schedules import ScheduleCallback

__all__ = ["PreemptionCheckpoint", "RunMarker", "RunRecord", "ScheduleCallback", "StepSeed"]
