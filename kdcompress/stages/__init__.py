"""The pipeline's stages, one module each (DESIGN §1), in the order they run; each declares the files it owns."""

from kdcompress.stages import bench, distill, export, load, report, search
from kdcompress.stages.base import Stage

STAGES: tuple[Stage, ...] = (load.STAGE, search.STAGE, distill.STAGE, export.STAGE, bench.STAGE, report.STAGE)
BY_NAME = {s.name: s for s in STAGES}

__all__ = ["BY_NAME", "STAGES", "Stage"]
