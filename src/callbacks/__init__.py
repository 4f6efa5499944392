from src.callbacks.preemption import PreemptionCheckpoint, StepSeed
from src.callbacks.run_marker import RunMarker, RunRecord

__all__ = ["PreemptionCheckpoint", "RunMarker", "RunRecord", "StepSeed"]
