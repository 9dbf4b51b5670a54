"""Batched simulators: many episodes' simulator calls become one batched generate call per round, with the
same answers as one call per episode; errors reach every caller; a threaded rollout with an LLM patient
behind the queue completes every episode."""

from __future__ import annotations

import threading

import pytest

from agentrl.backends.hf import HFChatModel
from agentrl.batching import BatchingChatModel


def _convo(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a patient."}, {"role": "user", "content": f"Question number {i}: where does it hurt?"}]


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
    together = _concurrently(lambda i: batched.complete(_convo(i), temperature=temperature, max_tokens=6, seed=40 + i), n)
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
    assert sum(b[0] for b in inner.batches) == 8 and len(inner.batches) <= 2  # greedy rows share calls whatever their seed


def test_an_error_reaches_every_waiting_caller() -> None:
    class BrokenModel:
        """Test stand-in for a model that fails (e.g. out of memory)."""

        def complete_rows(self, batch, **_):
            raise RuntimeError("model exploded")

    batched = BatchingChatModel(BrokenModel(), max_wait_s=0.2)
    out = _concurrently(lambda i: batched.complete(_convo(i)), 6)
    assert all(isinstance(x, RuntimeError) and "model exploded" in str(x) for x in out)
    assert batched.complete_batch is not None and not batched._queue and not batched._leader


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        BatchingChatModel(object(), max_batch=0)


def test_threaded_rollout_with_llm_patients_batches_their_turns(tiny) -> None:
    """Consultation-v0 with an LLM patient (tiny-random) for 6 episodes, envs stepped on 6 threads: every
    episode completes and the patient model makes fewer calls than there were patient turns."""
    from agentrl.backends.base import SamplingParams
    from agentrl.backends.hf import HFPolicy
    from agentrl.chat_format import ChatFormatter
    from agentrl.registry import make_env
    from agentrl.rollout import EpisodeSpec, RolloutRunner

    model, tok = tiny
    patient_model = BatchingChatModel(HFChatModel(model, tok), max_wait_s=0.2)
    runner = RolloutRunner(
        lambda: make_env("agentrl/Consultation-v0", patient="llm", chat_model=patient_model, max_turns=3),
        HFPolicy(model, tok), ChatFormatter(tok), SamplingParams(temperature=1.0, max_new_tokens=8), env_workers=6, seed=3,
    )
    eps = runner.collect([EpisodeSpec(task_id=None, seed=i, group_id=i) for i in range(6)])
    assert len(eps) == 6 and all(len(e.turns) >= 1 for e in eps)
    assert patient_model.requests > patient_model.calls, (patient_model.requests, patient_model.calls)
