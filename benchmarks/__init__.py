"""Optimizer-step benchmark: holocron-torch against its peers, torch.optim.AdamW and a memory-bandwidth floor.

``python -m benchmarks.run`` (or ``make bench``) writes docs/benchmarks.md and docs/benchmarks.png. Every
measurement runs in its own subprocess (``benchmarks.worker``); ``benchmarks.impls`` lists what is measured.
"""
