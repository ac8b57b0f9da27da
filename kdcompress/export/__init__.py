"""Export to deployable artifacts and check that they compute what the PyTorch model computes."""

from kdcompress.export.onnx import ParityReport, check_parity, to_onnx

__all__ = ["ParityReport", "check_parity", "to_onnx"]
