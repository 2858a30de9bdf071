"""The device side: engines, sources, pipeline, drift, data quality, telemetry.

Light by rule: numpy, numba (optional), one inference library and paho-mqtt. Never torch, tensorflow, onnx,
scipy, or anything from edgekit.train, edgekit.export or edgekit.fleet.
"""
