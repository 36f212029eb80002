"""VLM-judge critics (UnifiedReward, GPT-4o) register here; none yet."""
