"""An example third-party critic for milr (see docs/write-a-plugin.md)."""
