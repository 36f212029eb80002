"""`milr bench`: prompt sets, the benchmark runner (baseline, Best-of-N, MILR), resume,
torchrun sharding, summaries and re-scoring. Nothing here imports a model until a run starts."""
