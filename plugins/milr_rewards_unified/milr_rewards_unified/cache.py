"""Judge answers on disk, so that scoring the same image the same way again costs no request.

An entry is keyed by sha256 of the image's pixels, the model, the template,
the system message and the exact text sent (which holds the prompt); it stores
the raw answer, which is parsed again on every read. Only answers that held a
score are stored, so a judge that rambled once is asked again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from milr_core.runs import atomic_json

log = logging.getLogger(__name__)


def entry_key(image_sha256: str, model: str, template: str, system: str | None, text: str) -> str:
    parts = {"image": image_sha256, "model": model, "template": template, "system": system, "text": text}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class AnswerCache:
    def __init__(self, root: Path | None):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if self.root is None:
            return None
        try:
            return json.loads(self._path(key).read_text())["answer"]
        except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: ask again
            return None

    def put(self, key: str, *, model: str, image_sha256: str, text: str, answer: str) -> None:
        if self.root is not None:
            entry = {"model": model, "image_sha256": image_sha256, "text": text, "answer": answer}
            try:
                atomic_json(self._path(key), entry)
            except OSError as exc:  # the cache only saves requests; scoring goes on without it
                log.warning("cannot write judge cache %s: %s", self.root, exc.strerror or exc)
