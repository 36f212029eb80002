"""The VLM-judge critics (milr_rewards_unified) against a real OpenAI-compatible
HTTP server started here on 127.0.0.1: good, malformed, failing and slow answers."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from milr_rewards_unified import plugin
from milr_rewards_unified.parsing import not_generated, parse_score
from PIL import Image

from milr_core.errors import MilrError
from milr_core.interfaces import PromptRecord

SECRET = "sk-test-SECRET123"
RECORD = PromptRecord("a red cube")


def answer(text: str, delay: float = 0.0):
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    return 200, body, delay


def error(status: int, message: str = "boom", headers: dict | None = None):
    return status, {"error": {"message": message, "type": "server_error"}}, 0.0, headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server: JudgeServer = self.server
        with server.lock:
            server.gets.append(self.path)
        if self.path == "/v1/models" and server.models_status == 200:
            self.reply(200, {"object": "list", "data": [{"id": "judge", "object": "model", "owned_by": "test"}]})
        else:
            self.reply(server.models_status, {"error": {"message": "no", "type": "error"}})

    def reply(self, status: int, payload, headers: dict | None = None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def do_POST(self):
        server: JudgeServer = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with server.lock:
            n = len(server.requests)
            server.requests.append((headers, body))
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            if self.path != "/v1/chat/completions":
                status, payload, delay, extra = error(404, f"no route {self.path}")
            else:
                status, payload, delay, *more = server.script(n, body, headers)
                extra = more[0] if more else {}
            time.sleep(delay)
        finally:
            with server.lock:
                server.in_flight -= 1
        self.reply(status, payload, extra)


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[dict, dict]] = []
        self.gets: list[str] = []
        self.models_status = 200
        self.in_flight = self.max_in_flight = 0
        self.script = lambda n, body, headers: answer("Final Score: 4")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


@pytest.fixture
def server():
    srv = JudgeServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith(("OPENAI_", "MILR_UNIFIED_", "MILR_GPT4O_", "MILR_WISE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MILR_CACHE", str(tmp_path / "milr-cache"))


class Registry:
    """The plugin's own factories, called as the registry calls them (all of milr's plugins load slowly)."""

    factories: ClassVar[dict] = {
        "unified": plugin.unified, "unified-local": plugin.unified_local, "gpt-4o": plugin.gpt4o, "wise": plugin.wise,
        "wise-verified": plugin.wise_verified,
    }

    def create(self, kind, name, **kwargs):
        assert kind == "critic"
        return self.factories[name](**kwargs)


@pytest.fixture
def registry():
    return Registry()


def critic(registry, name, server, tmp_path, **kw):
    settings = {"base_url": server.url, "cache_dir": tmp_path / "cache", "backoff": 0.001, "backoff_max": 0.01}
    return registry.create("critic", name, backbone=None, **{**settings, **kw})


def image(red: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (red, 0, 0))


def sent_image(body: dict) -> Image.Image:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def sent_text(body: dict) -> str:
    return body["messages"][-1]["content"][1]["text"]


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lo, hi, expected",
    [
        ("Score: 4/5", 0, 1, 0.8),
        ("0.8", 0, 1, 0.8),
        ("8 out of 10", 0, 1, 0.8),
        ("I would give it a score of 8 out of 10.", 0, 10, 0.8),
        ('{"score": 7}', 0, 10, 0.7),
        ('Here you go: {"score": "4/5"}', 1, 5, 0.75),
        ("Yes.", 0, 1, 1.0),
        ("no, the cube is blue", 0, 1, 0.0),
        ("cube (object): 1\nred (attribute): 0\nFinal Score: 4", 1, 5, 0.75),
        ("Final Score: 4/5", 1, 5, 0.75),  # the judge's own scale: same as a bare 4
        ("Score (1-5): 3.5", 1, 5, 0.625),
        ("**Score:** 9", 0, 10, 0.9),
        ("<think>Score: 1 at first sight</think>Score: 9", 0, 10, 0.9),
        ("Part score: 2\nFinal Score: 5\nScore: 1", 1, 5, 1.0),  # the final score wins
    ],
)
def test_scores_are_read_from_many_answer_shapes(text, lo, hi, expected):
    value, fragment = parse_score(text, lo, hi)
    assert value == pytest.approx(expected)
    assert fragment


@pytest.mark.parametrize("text", ["", "I cannot tell.", "Score: 12", "Final Score: 0", "Score: -1/5", "7 cats"])
def test_answers_without_a_score_on_the_scale_are_unparseable(text):
    assert parse_score(text, 1, 10) is None


def test_elements_marked_zero_are_listed():
    text = "cube (object): 1\n- red (attribute): 0\n2. two cats (count): 0\nFinal Score: 2"
    assert not_generated(text) == ["red (attribute)", "two cats (count)"]


# --- the critics against a live server ------------------------------------------------------


def test_the_entry_point_registers_its_critics():
    from importlib.metadata import entry_points

    [ep] = [ep for ep in entry_points(group="milr") if ep.value == "milr_rewards_unified.plugin"]
    assert ep.dist.name == "milr-rewards-unified"
    registered = {}
    ep.load().register_critics(register=lambda name, factory, description="", options=None: registered.update({name: factory}))
    assert registered == Registry.factories


def test_good_answers_and_what_is_sent(registry, server, tmp_path):
    server.script = lambda n, body, headers: answer(
        "red cube (object): 1\nshiny (attribute): 0\nFinal Score: 4" if n == 0 else "Final Score: 5"
    )
    judge = critic(registry, "unified", server, tmp_path, concurrency=1)
    scores = judge.score([image(10), image(200)], RECORD)
    assert [s.value for s in scores] == [0.75, 1.0]
    assert "CodeGoat24/UnifiedReward-qwen-7b" in scores[0].detail and "shiny (attribute)" in scores[0].detail
    body = server.requests[0][1]
    assert body["model"] == "CodeGoat24/UnifiedReward-qwen-7b" and body["temperature"] == 0
    assert "Text Caption: [a red cube]" in sent_text(body)
    assert sent_image(body).getpixel((0, 0)) == (10, 0, 0)
    assert sent_image(server.requests[1][1]).getpixel((0, 0)) == (200, 0, 0)


def test_malformed_answers_are_asked_again_then_give_nan(registry, server, tmp_path):
    server.script = lambda n, body, headers: answer("What a lovely picture!")
    judge = critic(registry, "unified", server, tmp_path, parse_retries=2)
    [score] = judge.score([image(1)], RECORD)
    assert math.isnan(score.value)
    assert "no score in 3 answer(s)" in score.detail and "What a lovely picture!" in score.detail
    assert len(server.requests) == 3
    judge.score([image(1)], RECORD)  # unparseable answers are not cached
    assert len(server.requests) == 6


def test_a_malformed_answer_then_a_good_one(registry, server, tmp_path):
    server.script = lambda n, body, headers: answer("hmm" if n == 0 else "Final Score: 3")
    [score] = critic(registry, "unified", server, tmp_path).score([image(1)], RECORD)
    assert score.value == 0.5 and len(server.requests) == 2


def test_server_errors_are_retried(registry, server, tmp_path):
    server.script = lambda n, body, headers: error(500) if n < 2 else answer("Final Score: 2")
    [score] = critic(registry, "unified", server, tmp_path, max_retries=3).score([image(1)], RECORD)
    assert score.value == 0.25
    assert len(server.requests) == 3


def test_a_server_that_keeps_failing_gives_one_clear_line(registry, server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # a careless server that echoes the request's credentials into its error
    server.script = lambda n, body, headers: error(503, f"overloaded; you sent {headers['authorization']}")
    judge = critic(registry, "gpt-4o", server, tmp_path, max_retries=3)
    start = time.monotonic()
    with pytest.raises(MilrError) as exc:
        judge.score([image(1)], RECORD)
    assert time.monotonic() - start < 2
    message = str(exc.value)
    assert len(server.requests) == 4
    assert "\n" not in message
    assert server.url in message and "gpt-4o" in message and "4 attempts" in message and "503" in message
    assert SECRET not in message and "SECRET" not in message


def test_a_refused_request_is_not_retried(registry, server, tmp_path):
    server.script = lambda n, body, headers: error(404, "model 'nope' does not exist")
    with pytest.raises(MilrError, match="refused the request.*does not exist"):
        critic(registry, "unified", server, tmp_path, model="nope").score([image(1)], RECORD)
    assert len(server.requests) == 1


def test_a_body_that_is_no_chat_completion_is_a_clear_error(registry, server, tmp_path):
    for body in (b"<html>Welcome to nginx", b"[1, 2]"):
        server.requests.clear()
        server.script = lambda n, b, headers, body=body: (200, body, 0.0)
        with pytest.raises(MilrError, match="did not answer with a chat completion; is base_url"):
            critic(registry, "unified", server, tmp_path).score([image(1)], RECORD)
        assert len(server.requests) == 1


def test_no_server_listening(registry, tmp_path):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = registry.create(
        "critic", "unified", base_url=f"http://127.0.0.1:{port}/v1", cache_dir="off", max_retries=2, backoff=0.001
    )
    with pytest.raises(
        MilrError, match=rf"127.0.0.1:{port}/v1: no answer after 3 attempts; last error: APIConnectionError"
    ):
        judge.score([image(1)], RECORD)


def test_slow_answers_time_out_and_are_retried(registry, server, tmp_path):
    server.script = lambda n, body, headers: answer("Final Score: 5", delay=1.0)
    judge = critic(registry, "unified", server, tmp_path, timeout=0.2, max_retries=1)
    start = time.monotonic()
    with pytest.raises(MilrError, match="no answer after 2 attempts; last error: APITimeoutError"):
        judge.score([image(1)], RECORD)
    assert time.monotonic() - start < 1.0  # gave up without waiting for the slow server
    assert len(server.requests) == 2

    server.requests.clear()
    server.script = lambda n, body, headers: answer("Final Score: 5", delay=1.0 if n == 0 else 0.0)
    [score] = critic(registry, "unified", server, tmp_path, timeout=0.2, max_retries=1).score([image(2)], RECORD)
    assert score.value == 1.0 and len(server.requests) == 2


def test_requests_of_a_batch_overlap(registry, server, tmp_path):
    # the answer depends on the image, so that the order of results can be checked too
    def script(n, body, headers):
        red = sent_image(body).getpixel((0, 0))[0]
        return answer(f"Final Score: {1 + red % 5}", delay=0.3)

    server.script = script
    images = [image(i) for i in range(6)]
    start = time.monotonic()
    scores = critic(registry, "unified", server, tmp_path, concurrency=3, cache_dir="off").score(images, RECORD)
    assert time.monotonic() - start < 6 * 0.3
    assert server.max_in_flight == 3
    assert [s.value for s in scores] == [(i % 5) / 4 for i in range(6)]

    server.max_in_flight = 0
    critic(registry, "unified", server, tmp_path, concurrency=1, cache_dir="off").score(images[:3], RECORD)
    assert server.max_in_flight == 1


def test_the_cache_makes_reruns_free(registry, server, tmp_path):
    cache = tmp_path / "cache"
    first = critic(registry, "unified", server, tmp_path).score([image(1), image(2)], RECORD)
    assert len(server.requests) == 2
    again = critic(registry, "unified", server, tmp_path).score([image(1), image(2)], RECORD)  # a fresh critic
    assert len(server.requests) == 2
    assert [s.value for s in again] == [s.value for s in first] and all("(cached)" in s.detail for s in again)
    entries = sorted(cache.rglob("*.json"))
    assert len(entries) == 2 and not list(cache.rglob("*.tmp"))
    entry = json.loads(entries[0].read_text())
    assert entry["answer"] == "Final Score: 4" and entry["model"] == "CodeGoat24/UnifiedReward-qwen-7b"
    # another prompt, model or template is another question
    critic(registry, "unified", server, tmp_path).score([image(1)], PromptRecord("a blue ball"))
    critic(registry, "unified", server, tmp_path, model="other").score([image(1)], RECORD)
    critic(registry, "unified", server, tmp_path, template="Rate [{prompt}]").score([image(1)], RECORD)
    assert len(server.requests) == 5


def test_the_key_reaches_the_server_and_nothing_written(registry, server, tmp_path, monkeypatch):
    """End to end: a MILR run with the gpt-4o judge writes a run folder and a cache; the key is in neither."""
    from fakes import FakeBackbone

    from milr_core.config import RunConfig
    from milr_core.engine import run_milr
    from milr_core.records import Component, RunRecord, environment
    from milr_core.runs import RunDir
    from milr_core.strategies import Joint

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)  # the gpt-4o critic's default endpoint
    seen = []

    def script(n, body, headers):
        seen.append(headers["authorization"])
        return answer(f"Looks fine to the holder of {headers['authorization']}. Score: {n % 11}")

    server.script = script
    judge = registry.create("critic", "gpt-4o", backbone=None, backoff=0.001)
    config = RunConfig(steps=2, samples=2, threshold=1.0)
    out = RunDir.create(tmp_path / "run")
    out.write_config(RunRecord(prompt=RECORD.prompt, backbone=Component(name="fake"), run=config,
                               critic=Component(name="gpt-4o", options=judge.settings.model_dump(mode="json")),
                               environment=environment([])))
    result = run_milr(FakeBackbone(), judge, Joint(), RECORD, config, on_step=out.write_step)
    out.write_final(result, seconds=0.0)
    out.close()
    assert seen and set(seen) == {f"Bearer {SECRET}"}
    assert server.requests[0][1]["model"] == "gpt-4o"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "judges" in p.parts for p in written)  # the cache, under MILR_CACHE
    assert (tmp_path / "run" / "trace.jsonl").exists()
    for path in written:
        assert b"SECRET" not in path.read_bytes(), path
    assert all("SECRET" not in d for step in result.steps for d in step.details)


def test_a_judge_on_the_openai_api_needs_a_key(registry):
    with pytest.raises(MilrError, match="set the environment variable OPENAI_API_KEY"):
        registry.create("critic", "gpt-4o", backbone=None)


def test_the_openai_key_does_not_travel_to_a_self_hosted_server(registry, server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    critic(registry, "unified", server, tmp_path).score([image(1)], RECORD)
    assert server.requests[0][0]["authorization"] == "Bearer EMPTY"
    monkeypatch.setenv("MILR_UNIFIED_API_KEY", "vllm-key")
    critic(registry, "unified", server, tmp_path, cache_dir="off").score([image(1)], RECORD)
    assert server.requests[1][0]["authorization"] == "Bearer vllm-key"


def test_settings_from_environment_then_keywords(registry, server, tmp_path, monkeypatch):
    monkeypatch.setenv("MILR_UNIFIED_BASE_URL", server.url)
    monkeypatch.setenv("MILR_UNIFIED_MODEL", "env-model")
    monkeypatch.setenv("MILR_UNIFIED_CACHE_DIR", "off")
    judge = registry.create("critic", "unified", backbone=None)
    assert judge.settings.cache_dir is None
    judge.score([image(1)], RECORD)
    registry.create("critic", "unified", backbone=None, model="kw-model").score([image(1)], RECORD)
    assert [body["model"] for _, body in server.requests] == ["env-model", "kw-model"]

    monkeypatch.setenv("MILR_UNIFIED_CONCURRENCY", "zero")
    with pytest.raises(MilrError, match=r"^invalid unified critic settings: concurrency='zero'") as exc:
        registry.create("critic", "unified", backbone=None)
    assert "\n" not in str(exc.value)


def test_bad_settings_are_one_line_errors(registry):
    with pytest.raises(MilrError, match=r"template=.*unknown placeholder \{caption\}"):
        registry.create("critic", "unified", backbone=None, template="Rate {caption}")
    with pytest.raises(MilrError, match="base_url.*http"):
        registry.create("critic", "unified", backbone=None, base_url="localhost:8000")
    with pytest.raises(MilrError) as exc:  # a key passed as a setting is refused without echoing it
        registry.create("critic", "unified", backbone=None, api_key=SECRET)
    assert SECRET not in str(exc.value) and "environment" in str(exc.value)


WISE_SCRIPT = """
def build_evaluation_messages(prompt_data, image_base64):
    return [
        {"role": "system", "content": [{"type": "text", "text": "Judge {strictly}."}]},
        {"role": "user", "content": [
            {"type": "text", "text": f\"\"\"Rate it.
PROMPT: "{prompt_data['Prompt']}"
EXPLANATION: "{prompt_data['Explanation']}"
Answer as {{ labels }}.\"\"\"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_base64}"}},
        ]},
    ]
"""


@pytest.fixture
def wise_repo(tmp_path):
    """A stand-in WISE checkout whose scripts build their messages as WISE's do (our own wording)."""
    for script in ("WISE_legacy/gpt_eval.py", "vllm_eval.py"):
        (tmp_path / "WISE" / script).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "WISE" / script).write_text(WISE_SCRIPT)
    return tmp_path / "WISE"


def test_wise_judges_with_wises_own_messages(registry, server, tmp_path, wise_repo):
    server.script = lambda n, body, headers: answer(
        "The tower is right.\nConsistency: 2\nRealism: 1\nAesthetic Quality: 0"
    )
    record = PromptRecord("the tallest tower in Paris", "CULTURE", extra={"Explanation": "The Eiffel Tower "})
    judge = critic(registry, "wise", server, tmp_path, model="judge-model", wise_repo=str(wise_repo))
    [score] = judge.score([image(1)], record)
    assert score.value == pytest.approx(0.8)
    assert "consistency 2, realism 1, aesthetic 0 -> WiScore 0.800" in score.detail
    body = server.requests[0][1]
    assert body["model"] == "judge-model" and body["max_tokens"] == 2000 and body["temperature"] == 0.0
    system, user = body["messages"]
    assert system == {"role": "system", "content": [{"type": "text", "text": "Judge {strictly}."}]}
    assert [part["type"] for part in user["content"]] == ["text", "image_url"]  # text first, as upstream
    assert user["content"][0]["text"] == (
        'Rate it.\nPROMPT: "the tallest tower in Paris"\nEXPLANATION: "The Eiffel Tower "\nAnswer as { labels }.'
    )
    assert "chat_template_kwargs" not in body


def test_wise_verified_asks_for_a_binary_score(registry, server, tmp_path, wise_repo):
    answers = iter(["I think **Score:** 1", "Score: 1"])  # the first is unreadable upstream: asked again
    server.script = lambda n, body, headers: answer(next(answers))
    record = PromptRecord("mooncakes", "CULTURE", extra={"Explanation": "round pastries"})
    judge = critic(registry, "wise-verified", server, tmp_path, wise_repo=str(wise_repo))
    [score] = judge.score([image(2)], record)
    assert (score.value, score.detail) == (1.0, "Qwen3.5-35B-A3B: Score: 1")
    body = server.requests[0][1]
    assert body["model"] == "Qwen3.5-35B-A3B" and body["max_tokens"] == 500
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and len(server.requests) == 2


def test_wise_without_a_checkout_says_where_its_prompt_comes_from(registry, tmp_path):
    with pytest.raises(MilrError, match="set MILR_WISE_REPO to a clone of github.com/PKU-YuanGroup/WISE"):
        registry.create("critic", "wise", backbone=None)
    with pytest.raises(MilrError, match="cannot read WISE's judge prompt from .*vllm_eval.py"):
        registry.create("critic", "wise-verified", backbone=None, wise_repo=str(tmp_path))
    own = registry.create("critic", "wise", backbone=None, template="Rate {prompt}", base_url="http://127.0.0.1:9/v1")
    assert own.settings.template == "Rate {prompt}" and own.settings.system is None


# --- waiting as asked, the cache's key and limits, answers that are no score, the early check ------


@pytest.mark.parametrize("header", [{"Retry-After": "1"}, {"retry-after-ms": "1000"}])
def test_retry_after_is_honoured(registry, server, tmp_path, header):
    server.script = lambda n, body, headers: error(429, "slow down", header) if n == 0 else answer("Final Score: 5")
    judge = critic(registry, "unified", server, tmp_path)  # backoff alone would wait 0.001 s
    start = time.monotonic()
    [score] = judge.score([image(1)], RECORD)
    assert score.value == 1.0 and len(server.requests) == 2
    assert 0.9 <= time.monotonic() - start < 5


def test_retry_after_as_a_date():
    from email.utils import formatdate

    from milr_rewards_unified.transport import retry_after

    assert retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)}) == pytest.approx(30, abs=2)
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_a_longer_wait_than_allowed_is_one_line_at_once(registry, server, tmp_path):
    server.script = lambda n, body, headers: error(503, "maintenance", {"Retry-After": "3600"})
    start = time.monotonic()
    with pytest.raises(MilrError) as exc:
        critic(registry, "unified", server, tmp_path, retry_after_max=10).score([image(1)], RECORD)
    assert time.monotonic() - start < 2 and len(server.requests) == 1
    message = str(exc.value)
    assert "\n" not in message and "asks to wait 3600 s" in message and "retry_after_max = 10 s" in message


def test_the_cache_key_holds_the_server(registry, server, tmp_path):
    other = JudgeServer()
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        critic(registry, "unified", server, tmp_path).score([image(1)], RECORD)
        [score] = critic(registry, "unified", other, tmp_path).score([image(1)], RECORD)
        assert len(other.requests) == 1 and "(cached)" not in score.detail
    finally:
        other.shutdown()
        other.server_close()


def test_a_cache_that_cannot_be_written_is_a_warning(registry, server, tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    judge = critic(registry, "unified", server, tmp_path, cache_dir=blocked)
    with caplog.at_level("WARNING"):
        scores = judge.score([image(1), image(2)], RECORD)
    assert [s.value for s in scores] == [0.75, 0.75]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not cached" in warnings[0] and "not-a-folder" in warnings[0]


def test_an_answer_that_declines_is_nan_with_the_reason(registry, server, tmp_path):
    server.script = lambda n, body, headers: answer("No, I cannot see any image.")
    [score] = critic(registry, "unified", server, tmp_path, parse_retries=0).score([image(1)], RECORD)
    assert math.isnan(score.value)
    assert "could not judge the image ('cannot see any image')" in score.detail
    assert "No, I cannot see any image." in score.detail
    # a judgement that says what the image lacks is a score, not a refusal
    assert parse_score("I don't see a red cube in the image. Score: 2", 1, 5) == (0.25, "Score: 2")


def test_huge_answers_are_scored_but_not_cached(registry, server, tmp_path):
    from milr_rewards_unified.cache import MAX_ANSWER

    server.script = lambda n, body, headers: answer("Final Score: 4\n" + "blah " * (MAX_ANSWER // 5 + 1))
    [score] = critic(registry, "unified", server, tmp_path).score([image(1)], RECORD)
    assert score.value == 0.75
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_check_finds_the_server_once(registry, server, tmp_path):
    judge = critic(registry, "unified", server, tmp_path)
    assert not hasattr(judge, "verdict")  # correctness is the Score's to say, not a method's
    judge.check(RECORD)
    judge.check(PromptRecord("another prompt"))
    assert server.gets == ["/v1/models"] and not server.requests  # no image was judged
    server.models_status = 404  # a server without the listing is still a server
    critic(registry, "unified", server, tmp_path).check(RECORD)


def test_check_names_a_missing_server_or_a_refused_key(registry, server, tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = registry.create("critic", "unified", base_url=f"http://127.0.0.1:{port}/v1", cache_dir="off")
    start = time.monotonic()
    with pytest.raises(MilrError, match=rf"^cannot reach the unified judge .* at http://127.0.0.1:{port}/v1: "):
        judge.check(RECORD)
    assert time.monotonic() - start < 6

    monkeypatch.setenv("MILR_UNIFIED_API_KEY", SECRET)
    server.models_status = 401
    with pytest.raises(MilrError, match="refuses access with the API key in MILR_UNIFIED_API_KEY") as exc:
        critic(registry, "unified", server, tmp_path).check(RECORD)
    assert SECRET not in str(exc.value)
