"""Judge answers on disk, so that scoring the same image the same way again costs no request.

An entry is keyed by sha256 of the image's pixels, where the judge is (the
server's base URL, or "local" for the in-process judge), the model, the
template, the system message and the exact text sent (which holds the prompt);
never by anything secret. It stores the raw answer, which is parsed again on
every read. Only answers that held a score are stored, so a judge that rambled
once is asked again on the next run; answers longer than MAX_ANSWER characters
are not stored either (a judge asked for at most max_tokens tokens writes a few
KB; anything far longer is a broken server, not worth disk space).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from milr_core.errors import MilrError
from milr_core.runs import atomic_json

log = logging.getLogger(__name__)

MAX_ANSWER = 64_000


def entry_key(image_sha256: str, where: str, model: str, template: str, system: str | None, text: str) -> str:
    parts = {"image": image_sha256, "where": where, "model": model, "template": template, "system": system,
             "text": text}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class AnswerCache:
    def __init__(self, root: Path | None):
        self.root = root
        self._warned = False

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if self.root is None:
            return None
        try:
            answer = json.loads(self._path(key).read_text())["answer"]
        except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: ask again
            return None
        return answer if isinstance(answer, str) else None

    def put(self, key: str, *, model: str, image_sha256: str, text: str, answer: str) -> None:
        if self.root is None or len(answer) > MAX_ANSWER:
            return
        entry = {"model": model, "image_sha256": image_sha256, "text": text, "answer": answer}
        try:
            atomic_json(self._path(key), entry)
        except (OSError, MilrError) as exc:  # the cache only saves requests; scoring goes on without it
            if not self._warned:  # once: an unwritable folder would otherwise warn for every image
                self._warned = True
                log.warning("judge answers are not cached: %s", exc.strerror if isinstance(exc, OSError) else exc)
