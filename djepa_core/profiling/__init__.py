"""Measurement tools behind `djepa bench` and `bench/*.py`: FLOP counts, the machine's matmul rate, timings."""
