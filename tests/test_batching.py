"""Batched simulators: many episodes' simulator calls become one batched generate call per round, with the
same answers as one call per episode; errors reach every caller; `SimulatorQueue.map_serving` answers its
models' batches on the calling thread and hands leftovers on; two queues in one process serve independently;
a threaded rollout with an LLM patient behind the queue completes every episode, its patient's batches
computed on the rollout's thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentrl.inference.hf import HFChatModel
from agentrl.sim.batching import BatchingChatModel, SimulatorQueue


def _convo(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a patient."},
        {"role": "user", "content": f"Question number {i}: where does it hurt?"},
    ]


def _concurrently(fn, n: int) -> list:
    out: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    return out


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_concurrent_calls_become_one_batched_call_with_the_same_answers(tiny, temperature) -> None:
    model, tok = tiny
    plain = HFChatModel(model, tok)
    batched = BatchingChatModel(HFChatModel(model, tok), max_wait_s=0.2)
    n = 12
    alone = [plain.complete(_convo(i), temperature=temperature, max_tokens=6, seed=40 + i) for i in range(n)]
    together = _concurrently(
        lambda i: batched.complete(_convo(i), temperature=temperature, max_tokens=6, seed=40 + i), n
    )
    assert together == alone
    assert batched.requests == n and batched.calls <= 2, batched.calls  # one call (two if a thread was late)
    assert batched.model.calls == batched.calls


def test_overflow_beyond_max_batch_is_served_too(tiny) -> None:
    model, tok = tiny
    batched = BatchingChatModel(HFChatModel(model, tok), max_batch=4, max_wait_s=0.2)
    out = _concurrently(lambda i: batched.complete(_convo(i), max_tokens=3), 10)
    assert all(isinstance(x, str) for x in out) and batched.requests == 10 and batched.calls >= 3


def test_model_without_per_row_settings_groups_rows() -> None:
    class EchoBatchModel:
        """Test stand-in without complete_rows: records each complete_batch call's size and settings."""

        def __init__(self) -> None:
            self.batches: list[tuple[int, float, int | None]] = []

        def complete_batch(self, batch, *, temperature=0.0, max_tokens=256, seed=None):
            self.batches.append((len(batch), temperature, seed))
            return [m[-1]["content"].upper() for m in batch]

    inner = EchoBatchModel()
    batched = BatchingChatModel(inner, max_wait_s=0.2)
    out = _concurrently(lambda i: batched.complete(_convo(i), temperature=0.0, seed=i), 8)
    assert out == [_convo(i)[-1]["content"].upper() for i in range(8)]
    assert (
        sum(b[0] for b in inner.batches) == 8 and len(inner.batches) <= 2
    )  # greedy rows share calls whatever their seed


def test_an_error_reaches_every_waiting_caller() -> None:
    class BrokenModel:
        """Test stand-in for a model that fails (e.g. out of memory)."""

        def complete_rows(self, batch, **_):
            raise RuntimeError("model exploded")

    batched = BatchingChatModel(BrokenModel(), max_wait_s=0.2)
    out = _concurrently(lambda i: batched.complete(_convo(i)), 6)
    assert all(isinstance(x, RuntimeError) and "model exploded" in str(x) for x in out)
    assert batched.complete_batch is not None and not batched._pending and not batched._leader


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        BatchingChatModel(object(), max_batch=0)


def test_threaded_rollout_with_llm_patients_batches_their_turns(tiny) -> None:
    """Consultation-v0 with an LLM patient (tiny-random) for 6 episodes, envs stepped on 6 threads: every
    episode completes and the patient model makes fewer calls than there were patient turns."""
    from agentrl.core.chat_format import ChatFormatter
    from agentrl.core.registry import make_env
    from agentrl.inference.base import SamplingParams
    from agentrl.inference.hf import HFPolicy
    from agentrl.rollout.runner import EpisodeSpec, RolloutRunner

    model, tok = tiny
    queue = SimulatorQueue()
    patient_model = BatchingChatModel(HFChatModel(model, tok), queue=queue, max_wait_s=0.2)
    runner = RolloutRunner(
        lambda: make_env("agentrl/Consultation-v0", patient="llm", simulator=patient_model, max_turns=3),
        HFPolicy(model, tok),
        ChatFormatter(tok),
        SamplingParams(temperature=1.0, max_new_tokens=8),
        env_workers=6,
        seed=3,
        simulator_queue=queue,
    )
    threads: set[int] = set()
    answer = patient_model.model.complete_rows

    def recording(*a, **k):
        threads.add(threading.get_ident())
        return answer(*a, **k)

    patient_model.model.complete_rows = recording
    eps = runner.collect([EpisodeSpec(task_id=None, seed=i, group_id=i) for i in range(6)])
    assert len(eps) == 6 and all(len(e.turns) >= 1 for e in eps)
    assert patient_model.requests > patient_model.calls, (patient_model.requests, patient_model.calls)
    assert threads == {threading.get_ident()}, "the patient's batches ran on an env thread, not the rollout's"


class _ThreadRecordingModel:
    """Test stand-in with per-row settings: upper-cases the last message and records the thread and size of
    each call (optionally slow, or calling `inner` for a nested simulator)."""

    def __init__(self, delay_s: float = 0.0, inner: BatchingChatModel | None = None) -> None:
        self.calls: list[tuple[int, int]] = []  # (thread ident, rows)
        self.delay_s, self.inner = delay_s, inner

    def complete_rows(self, batch, **_):
        self.calls.append((threading.get_ident(), len(batch)))
        time.sleep(self.delay_s)
        out = [m[-1]["content"].upper() for m in batch]
        if self.inner is not None:
            out = [self.inner.complete([{"role": "user", "content": o}]) for o in out]
        return out


def _upper(i: int) -> str:
    return _convo(i)[-1]["content"].upper()


def test_map_serving_answers_every_batch_on_the_calling_thread() -> None:
    inner = _ThreadRecordingModel()
    queue = SimulatorQueue()
    batched = BatchingChatModel(inner, queue=queue, max_batch=8, max_wait_s=0.2)
    with ThreadPoolExecutor(8) as pool:
        out = queue.map_serving(pool, lambda i: batched.complete(_convo(i)), range(8))
    assert out == [_upper(i) for i in range(8)]
    assert {t for t, _ in inner.calls} == {threading.get_ident()}, "a batch ran on a pool thread"
    assert sum(n for _, n in inner.calls) == 8 and len(inner.calls) <= 2


def test_map_serving_serves_overflow_and_several_models() -> None:
    a, b = _ThreadRecordingModel(), _ThreadRecordingModel()
    queue = SimulatorQueue()
    qa, qb = (
        BatchingChatModel(a, queue=queue, max_batch=3, max_wait_s=0.1),
        BatchingChatModel(b, queue=queue, max_wait_s=0.1),
    )
    with ThreadPoolExecutor(10) as pool:
        out = queue.map_serving(pool, lambda i: (qa if i % 2 else qb).complete(_convo(i)), range(10))
    assert out == [_upper(i) for i in range(10)]
    assert {t for t, _ in a.calls + b.calls} == {threading.get_ident()}
    assert sum(n for _, n in a.calls) == 5 and max(n for _, n in a.calls) <= 3  # max_batch holds while serving


def test_map_serving_raises_the_error_after_every_job_finished() -> None:
    class BrokenModel:
        """Test stand-in for a model that fails."""

        def complete_rows(self, batch, **_):
            raise RuntimeError("model exploded")

    queue = SimulatorQueue()
    batched = BatchingChatModel(BrokenModel(), queue=queue, max_wait_s=0.05)
    finished: list[int] = []

    def job(i: int) -> str:
        try:
            return batched.complete(_convo(i))
        finally:
            finished.append(i)

    with ThreadPoolExecutor(4) as pool, pytest.raises(RuntimeError, match="model exploded"):
        queue.map_serving(pool, job, range(4))
    assert sorted(finished) == [0, 1, 2, 3]
    assert not batched._pending and not batched._leader


def test_a_simulator_calling_another_from_the_serving_thread_does_not_deadlock() -> None:
    queue = SimulatorQueue()
    second = BatchingChatModel(_ThreadRecordingModel(), queue=queue, max_wait_s=0.01)
    first = BatchingChatModel(_ThreadRecordingModel(inner=second), queue=queue, max_wait_s=0.1)
    with ThreadPoolExecutor(3) as pool:
        assert queue.map_serving(pool, lambda i: first.complete(_convo(i)), range(3)) == [_upper(i) for i in range(3)]


def test_map_serving_from_two_threads_at_once() -> None:
    """Two threads serve one queue at once (e.g. two runners given the same queue): one serves, the other
    waits; all answers arrive."""
    inner = _ThreadRecordingModel(delay_s=0.05)
    queue = SimulatorQueue()
    batched = BatchingChatModel(inner, queue=queue, max_wait_s=0.02)
    results: dict[int, list[str]] = {}

    def runner(k: int) -> None:
        with ThreadPoolExecutor(4) as pool:
            results[k] = queue.map_serving(pool, lambda i: batched.complete(_convo(10 * k + i)), range(4))

    out = _concurrently(runner, 2)
    assert out == [None, None]
    assert results == {k: [_upper(10 * k + i) for i in range(4)] for k in range(2)}


def test_requests_from_outside_the_served_work_are_answered_after_serving_stops() -> None:
    """Threads outside the served work call in: the first (t=0.05 s, a slow 0.4 s batch) is answered by the
    server; the second arrives while that batch runs and after the work is done (t=0.15 s), so the server
    stops and hands it to a leader thread of its own."""
    a, b = _ThreadRecordingModel(delay_s=0.4), _ThreadRecordingModel()
    queue = SimulatorQueue()
    qa, qb = BatchingChatModel(a, queue=queue, max_wait_s=0.0), BatchingChatModel(b, queue=queue, max_wait_s=0.0)
    outside: dict[str, str] = {}

    def call_later(name: str, q: BatchingChatModel, delay: float) -> threading.Thread:
        t = threading.Thread(target=lambda: (time.sleep(delay), outside.__setitem__(name, q.complete(_convo(1)))))
        t.start()
        return t

    strays = [call_later("a", qa, 0.05)]
    with ThreadPoolExecutor(1) as pool:
        queue.map_serving(pool, lambda _: (time.sleep(0.1), strays.append(call_later("b", qb, 0.05))), [0])
    for t in strays:
        t.join(timeout=10)
    assert outside == {"a": _upper(1), "b": _upper(1)}
    assert [t for t, _ in a.calls] == [threading.get_ident()]  # served
    assert [t for t, _ in b.calls] != [threading.get_ident()]  # handed off
    assert not qa._pending and not qa._leader and not qb._pending and not qb._leader


# ------------------------------------------------------------------ one queue per run
def test_two_queues_in_one_process_serve_independently() -> None:
    """Two runs step their envs at once, each serving its own queue: each queue's batches are answered on its
    own serving thread (neither run waits for, or serves, the other's), with each run's own answers."""
    queues = [SimulatorQueue(), SimulatorQueue()]
    inners = [_ThreadRecordingModel(delay_s=0.2), _ThreadRecordingModel(delay_s=0.2)]
    models = [BatchingChatModel(m, queue=q, max_wait_s=0.05) for m, q in zip(inners, queues)]
    servers: dict[int, int] = {}
    results: dict[int, list[str]] = {}

    def run(k: int) -> None:
        servers[k] = threading.get_ident()
        with ThreadPoolExecutor(4) as pool:
            results[k] = queues[k].map_serving(pool, lambda i: models[k].complete(_convo(10 * k + i)), range(4))

    assert _concurrently(run, 2) == [None, None]
    assert results == {k: [_upper(10 * k + i) for i in range(4)] for k in range(2)}
    for k in range(2):
        assert {t for t, _ in inners[k].calls} == {servers[k]}, f"queue {k}'s batches ran on another run's thread"
        assert queues[k].models == [models[k]]
        assert not models[k]._pending and not models[k]._leader


def test_a_queue_does_not_serve_a_model_on_another_queue() -> None:
    mine, other = SimulatorQueue(), SimulatorQueue()
    inner = _ThreadRecordingModel()
    batched = BatchingChatModel(inner, queue=other, max_wait_s=0.1)
    with ThreadPoolExecutor(4) as pool:
        out = mine.map_serving(pool, lambda i: batched.complete(_convo(i)), range(4))
    assert out == [_upper(i) for i in range(4)]
    assert threading.get_ident() not in {t for t, _ in inner.calls}  # a caller led them, on a pool thread
    assert mine.models == [] and other.models == [batched]


def test_a_model_without_a_queue_gets_a_private_one() -> None:
    a, b = BatchingChatModel(_ThreadRecordingModel()), BatchingChatModel(_ThreadRecordingModel())
    assert a.queue is not b.queue and a.queue.models == [a] and b.queue.models == [b]
