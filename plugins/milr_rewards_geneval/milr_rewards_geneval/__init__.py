"""GenEval-rule critics for milr: GenEval's verdict rules and the exact shapes-world oracle."""
