"""What `milr bench` can run on each prompt; a module of its own so the command line reads it without torch."""

MODES = ("baseline", "best-of-n", "milr", "resample")
