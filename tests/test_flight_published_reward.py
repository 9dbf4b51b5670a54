"""The benchmarks' own tasks run in the env and are scored as the benchmarks score them (issue 30): the gold
agent replaying the answer key scores 1 on both formats; a wrong database or a missing output scores 0; the
policy check's verdict on tasks whose gold breaks the written policy is an option; the offline user answers from
the instruction; the LLM user gets the benchmark's prompt and stop rule; pass^k comes from `agentrl eval`."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from test_flight_published_files import write_tau2, write_tau_bench

import environments  # noqa: F401
from agentrl.core.tools import format_tool_call
from environments.flight_booking import published
from environments.flight_booking.published import outputs_found, read_tau_bench_tasks
from environments.flight_booking.tasks.generator import play
from environments.flight_booking.users_published import TAU_BENCH_USER_PROMPT, InstructionUser, published_user_prompt


@pytest.fixture()
def v1(tmp_path: Path):
    data, tasks = write_tau_bench(tmp_path / "tau_bench")
    return gym.make("agentrl/FlightBooking-v0", world=str(data), tasks=str(tasks)).unwrapped


@pytest.fixture()
def tau2(tmp_path: Path):
    db, tasks = write_tau2(tmp_path / "tau2")
    return gym.make("agentrl/FlightBooking-v0", world=str(db), tasks=str(tasks), split="base").unwrapped


def _exempt_task_2(monkeypatch) -> None:
    monkeypatch.setitem(
        published.BENCHMARK_ERRORS,
        ("tau_bench_v1", "2", "ada_lee_1000"),
        ("cancel_flown", "The agent can only cancel the whole trip that is not flown.", "cancels EEE555", "test"),
    )


def test_gold_agent_scores_1_on_every_published_task_of_both_formats(v1, tau2, monkeypatch) -> None:
    _exempt_task_2(monkeypatch)
    for env in (v1, tau2):
        for tid in env.task_ids():
            r, breakdown, _ = play(env, tid)
            assert r == 1.0, (env.rules.parity, tid, breakdown)
    assert play(v1, "3")[1]["ended"] == 1.0 and v1.state.ended_by == "transfer"


def test_the_origin_equals_destination_cabin_change_breaks_no_rule(v1, tau2) -> None:
    for env, tid in ((v1, "0"), (tau2, "0")):  # τ-bench test task 2 / τ² task 18 do this on 2FBBAH (DEN-DEN)
        r, breakdown, _ = play(env, tid)
        assert r == 1.0 and breakdown["policy_violations"] == 0.0


def test_benchmark_error_verdict_is_an_option(tmp_path: Path, monkeypatch) -> None:
    _exempt_task_2(monkeypatch)
    data, tasks = write_tau_bench(tmp_path / "v1")
    for mode, policy, want in (("exempt", "score", 1.0), ("score", "score", 0.0), ("score", "report", 1.0)):
        env = gym.make(
            "agentrl/FlightBooking-v0", world=str(data), tasks=str(tasks), benchmark_errors=mode, policy=policy
        ).unwrapped
        r, breakdown, _ = play(env, "2")
        assert r == want and breakdown["policy/cancel_flown"] == 1.0, (mode, policy, breakdown)
        assert breakdown["policy_charged"] == (1.0 if want == 0.0 else 0.0)
    monkeypatch.delitem(published.BENCHMARK_ERRORS, ("tau_bench_v1", "2", "ada_lee_1000"))
    env = gym.make("agentrl/FlightBooking-v0", world=str(data), tasks=str(tasks)).unwrapped
    assert play(env, "2")[0] == 0.0  # not listed: the written policy wins


def test_the_real_benchmark_errors_are_listed_with_their_policy_line() -> None:
    assert {k[:2] for k in published.BENCHMARK_ERRORS} == {("tau_bench_v1", t) for t in ("10", "19", "26", "27", "34")}
    readme = Path(__file__).resolve().parent.parent / "environments" / "flight_booking" / "README.md"
    text = readme.read_text(encoding="utf-8")
    for (_, tid, _), (rule, _line, _, upstream) in published.BENCHMARK_ERRORS.items():
        assert f"| {tid} |" in text and f"`{rule}`" in text and upstream.split(";")[0] in text


def _play(env, tid: str, messages: list[str]):
    env.reset(options={"task_id": tid})
    out = None
    for m in messages:
        out = env.step(m)
        if out[2] or out[3]:
            break
    return out


def test_a_wrong_database_or_a_missing_output_scores_0(v1) -> None:
    upgrade = v1._by_id["0"].gold_actions[0]
    wrong = {**upgrade.arguments, "cabin": "economy"}  # a change, but not the one the answer key makes
    *_, info = _play(v1, "0", [format_tool_call(upgrade.name, wrong), "Done. Anything else?"])
    assert info["reward_breakdown"]["database"] == 0.0 and info["reward_breakdown"]["reward"] == 0.0
    read = v1._by_id["1"].gold_actions[0]
    *_, info = _play(v1, "1", [format_tool_call(read.name, read.arguments), "You paid 170. Anything else?"])
    assert info["reward_breakdown"]["outputs"] == 0.5 and info["reward_breakdown"]["reward"] == 0.0  # "1 bag" not said
    *_, info = _play(
        v1, "1", [format_tool_call(read.name, read.arguments), "You paid $170 and have 1 bag. Anything else?"]
    )
    assert info["reward_breakdown"]["reward"] == 1.0


def test_outputs_are_checked_as_the_benchmarks_check_them() -> None:
    # lower-cased, commas removed from the message, inside one message (not across two)
    assert outputs_found(["1234", "Business"], ["It costs $1,234 in business."]) == [True, True]
    assert outputs_found(["1 bag"], ["You have 1", "bag"]) == [False]
    assert outputs_found(["1,234"], ["1,234"]) == [False]  # τ-bench removes commas from the message only


def test_tau2_nl_assertions_are_reported_not_scored(tau2) -> None:
    _, info = tau2.reset(options={"task_id": "1"})
    assert info["nl_assertions"] == ["Agent should be polite."] and info["source"] == "tau2"
    r, breakdown, _ = play(tau2, "1")
    assert r == 1.0 and breakdown["nl_assertions_unscored"] == 1.0 and breakdown["unscored_basis"] == 0.0


def test_the_offline_user_answers_from_the_instruction(tmp_path: Path) -> None:
    _, tasks_file = write_tau_bench(tmp_path)
    task = read_tau_bench_tasks(tasks_file)[0]
    user = InstructionUser(task)
    assert user.opening() == "Hi! I want to upgrade my round trip DDD444 to business, keeping the flights."
    assert user.reply("Could you tell me your user id?") == "My user id is cy_ng_2000."
    assert user.reply("What is your reservation id?") == "It's DDD444."
    assert user.reply("How would you like to pay?") == "I pay with my card."
    assert user.reply("What is your date of birth?") == "I don't know."
    assert user.reply("I will upgrade DDD444 to business for $X. Shall I proceed?") == "Yes, please go ahead."
    assert user.reply("Done.") == "Okay."
    assert user.reply("Is there anything else I can help you with?").endswith("###STOP###") and user.stopped
    assert user.reply("Hello?") == "###STOP###"


class _Stub:
    def __init__(self, replies: list[str]):
        self.replies, self.seen = list(replies), []

    def complete(self, messages, **kwargs):
        self.seen.append([dict(m) for m in messages])
        return self.replies.pop(0)


def test_the_llm_user_gets_the_benchmarks_prompt_and_stop_rule(tmp_path: Path) -> None:
    data, tasks = write_tau_bench(tmp_path / "v1")
    stub = _Stub(["Hi, I want to upgrade.", "###STOP###"])
    env = gym.make("agentrl/FlightBooking-v0", world=str(data), tasks=str(tasks), user="llm", simulator=stub).unwrapped
    obs, _ = env.reset(options={"task_id": "1"})
    system = stub.seen[0][0]["content"]
    assert system == TAU_BENCH_USER_PROMPT.format(instruction_display=f"\n\nInstruction: {env.task.instruction}\n")
    assert stub.seen[0][1] == {"role": "user", "content": "Hi! How can I help you today?"}
    _, _, term, _, _ = env.step("Anything else?")
    assert term and env.state.ended_by == "user_stop"

    db, t2 = write_tau2(tmp_path / "t2")
    stub = _Stub(["Hello.", "###TRANSFER###"])
    env = gym.make("agentrl/FlightBooking-v0", world=str(db), tasks=str(t2), user="llm", simulator=stub).unwrapped
    env.reset(options={"task_id": "2"})
    prompt = stub.seen[0][0]["content"]
    assert prompt == published_user_prompt(env.task) and prompt.startswith("# User Simulation Guidelines")
    assert "<scenario>\nInstructions:\n\tDomain: airline" in prompt and prompt.endswith("</scenario>")
    _, _, term, _, _ = env.step("Let me transfer you.")
    assert term  # τ²'s ###TRANSFER### ends the conversation too


def test_snapshot_and_restore_branch_a_published_episode(v1) -> None:
    obs, _ = v1.reset(options={"task_id": "0"})
    snap = v1.snapshot()
    r1, *_ = play(v1, "0")
    v1.restore(snap)
    assert v1.state.db.hash() == v1.world.hash() and r1 == 1.0


def test_eval_reports_pass_k_on_published_tasks(tmp_path: Path, monkeypatch) -> None:
    from agentrl.eval.evaluate import evaluate

    _exempt_task_2(monkeypatch)
    db, tasks = write_tau2(tmp_path / "t2")
    res = evaluate(
        "agentrl/FlightBooking-v0",
        "scripted:gold",
        env_kwargs={"world": str(db), "tasks": str(tasks), "split": "test"},
        k=2,
        trials=3,
    )
    assert res.tasks == 1 and res.trials == 3 and res.pass_k == {1: 1.0, 2: 1.0}


def test_the_agent_reads_the_benchmarks_own_policy_when_it_lies_beside_the_tasks(tmp_path: Path) -> None:
    db, tasks = write_tau2(tmp_path / "t2")
    plain = gym.make("agentrl/FlightBooking-v0", tasks=str(tasks)).unwrapped
    assert "2024-05-15" in plain.system_prompt  # the env's policy text, with the clock
    (tasks.parent / "policy.md").write_text("# Airline Agent Policy\nBe kind.\n")
    env = gym.make("agentrl/FlightBooking-v0", tasks=str(tasks)).unwrapped
    obs, _ = env.reset(options={"task_id": "0"})
    assert env.system_prompt == "# Airline Agent Policy\nBe kind.\n" and obs[0]["content"].startswith(
        "# Airline Agent Policy"
    )


def test_each_benchmark_gets_its_own_tool_set(v1, tau2) -> None:
    assert "get_flight_status" not in v1.toolset.tools and "think" in v1.toolset.tools and len(v1.toolset.tools) == 14
    assert (
        "think" not in tau2.toolset.tools
        and "get_flight_status" in tau2.toolset.tools
        and len(tau2.toolset.tools) == 14
    )
    v1.reset(options={"task_id": "1"})
    obs, *_ = v1.step(format_tool_call("get_flight_status", {"flight_number": "HAT002", "date": "2024-05-15"}))
    assert obs[0]["content"].startswith("Error: unknown tool 'get_flight_status'")
