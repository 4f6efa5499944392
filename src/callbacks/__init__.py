from src.callbacks.preemption import PreemptionCheckpoint, StepSeed
from src.callbacks.run_marker import RunMarker

__all__ = ["PreemptionCheckpoint", "RunMarker", "StepSeed"]
