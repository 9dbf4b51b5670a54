"""FlightBooking-v0 end to end: the env contract, the gold agent at reward 1 on every shipped task, 0 for an
agent that skips a gold write or gets one field wrong, snapshot / restore at every turn, the users, pass^k."""

from __future__ import annotations

import copy
import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import environments  # noqa: F401  (registers the envs)
from agentrl.core.chat import BaseChatModel
from agentrl.core.registry import scripted_agent
from agentrl.core.tools import format_tool_call
from agentrl.eval.evaluate import evaluate
from environments.flight_booking.env import FlightBookingEnv
from environments.flight_booking.scripted import GoldAgent, gold_script
from environments.flight_booking.tasks import Action, Task
from environments.flight_booking.tasks.generator import play
from environments.flight_booking.tools import WRITE_TOOLS
from environments.flight_booking.users import STOP, LLMUser, RuleUser, requested_topics
from environments.flight_booking.world import Available

ENV_ID = "agentrl/FlightBooking-v0"


@pytest.fixture(scope="module")
def test_env() -> FlightBookingEnv:
    return FlightBookingEnv(split="test")


def tasks_of(env: FlightBookingEnv) -> list[Task]:
    return [env._by_id[t] for t in env.task_ids()]


# ---- contract --------------------------------------------------------------------------------------------------


def test_registered_and_passes_check_env() -> None:
    env = gym.make(ENV_ID).unwrapped
    assert isinstance(env, FlightBookingEnv) and env.split == "train" and env.max_turns == 30
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render.*")
        check_env(env, skip_render_check=True)


def test_first_observation_reset_options_and_bad_arguments(test_env: FlightBookingEnv) -> None:
    env = test_env
    assert len(env.task_ids()) >= 50 and len(FlightBookingEnv(split="train").task_ids()) >= 200
    tid = env.task_ids()[3]
    obs, info = env.reset(options={"task_id": tid})
    assert [m["role"] for m in obs] == ["system", "user"]
    assert (
        "The current time is 2024-05-15 15:00:00 EST." in obs[0]["content"]
        and '"name":"book_reservation"' in obs[0]["content"]
    )
    assert (
        obs[1]["content"] == env.task.user.reason
        and info["task_id"] == tid == env.task_id
        and info["family"] == env.task.family
    )
    assert len(info["tools"]) == 15
    assert env.reset(seed=5)[0] == env.reset(seed=5)[0]  # seeded draw is reproducible
    with pytest.raises(ValueError, match="unknown task_id 'nope': .* tasks in split 'test'"):
        env.reset(options={"task_id": "nope"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"task": tid})
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all'"):
        FlightBookingEnv(split="dev")
    with pytest.raises(ValueError, match="user='llm' needs simulator=<chat model>"):
        FlightBookingEnv(user="llm")
    with pytest.raises(ValueError, match="user must be 'rule' or 'llm'"):
        FlightBookingEnv(user=object())
    with pytest.raises(ValueError, match="simulator must be a chat model"):
        FlightBookingEnv(user="llm", simulator=object())


# ---- gold agent and reward -------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_gold_agent_scores_1_on_every_shipped_task(split: str) -> None:
    env = FlightBookingEnv(split=split)
    for tid in env.task_ids():
        reward, breakdown, turns = play(env, tid)
        assert reward == 1.0, (tid, breakdown)
        assert turns <= env.max_turns


def _write_positions(task: Task) -> list[int]:
    return [
        i
        for i, m in enumerate(gold_script(task))
        if m.startswith("<tool_call>") and json.loads(m[11:-12])["name"] in WRITE_TOOLS
    ]


def test_skipping_any_gold_write_scores_0(test_env: FlightBookingEnv) -> None:
    checked = 0
    for task in tasks_of(test_env):
        for pos in _write_positions(task):
            test_env.reset(options={"task_id": task.id})
            reward, breakdown, _ = play(test_env, task.id, GoldAgent(test_env, skip={pos}))
            assert reward == 0.0 and breakdown["database"] == 0.0, (task.id, pos, breakdown)
            checked += 1
    assert checked >= 30


def _perturb(action: Action, task: Task, env: FlightBookingEnv) -> Action:
    """One wrong field in a write."""
    a = copy.deepcopy(action.arguments)
    if action.name == "book_reservation":
        a["passengers"][0]["first_name"] += "x"
    elif action.name == "cancel_reservation":
        others = [
            r
            for r in env.world.users[task.user_id].reservations
            if r != a["reservation_id"] and env.world.reservations[r].status is None
        ]
        a["reservation_id"] = others[0] if others else "ZZZZZZ"
    elif action.name == "update_reservation_baggages":
        a["total_baggages"] += 1
    elif action.name == "update_reservation_flights":
        last = a["flights"][-1]
        fl = env.world.flights[last["flight_number"]]
        last["date"] = next(
            (d for d, fd in sorted(fl.dates.items()) if d > last["date"] and isinstance(fd, Available)), "2024-05-30"
        )
    elif action.name == "update_reservation_passengers":
        a["passengers"][0]["dob"] = "1900-01-01"
    elif action.name == "send_certificate":
        a["amount"] += 50
    return Action(name=action.name, arguments=a)


def test_a_wrong_field_in_any_gold_write_scores_0(test_env: FlightBookingEnv) -> None:
    checked = 0
    for task in tasks_of(test_env):
        for i, action in enumerate(task.gold_actions):
            if action.name not in WRITE_TOOLS:
                continue
            actions = list(task.gold_actions)
            actions[i] = _perturb(action, task, test_env)
            assert actions[i] != action
            test_env.reset(options={"task_id": task.id})
            reward, breakdown, _ = play(test_env, task.id, GoldAgent(test_env, actions=actions))
            assert reward == 0.0 and breakdown["database"] == 0.0, (task.id, action.name, breakdown)
            checked += 1
    assert checked >= 30


def test_ending_outputs_and_truncation_are_scored(test_env: FlightBookingEnv) -> None:
    env = test_env
    tasks = tasks_of(env)
    refusal = next(t for t in tasks if t.user.goals[-1].outcome == "refuse" and not t.expects_transfer)
    env.reset(options={"task_id": refusal.id})
    _, r, term, _, info = env.step(format_tool_call("transfer_to_human_agents", {"summary": "hard case"}))
    assert (
        term
        and r == 0.0
        and info["reward_breakdown"]["transfer"] == 0.0
        and info["reward_breakdown"]["database"] == 1.0
    )
    transfer = next(t for t in tasks if t.expects_transfer)
    env.reset(options={"task_id": transfer.id})
    _, r, term, _, info = env.step("Sorry, I can't help. Goodbye." + " " * 3)
    while not term:  # the user is never transferred: it ends the call itself
        _, r, term, trunc, info = env.step("Goodbye.")
        term = term or trunc
    assert r == 0.0 and info["reward_breakdown"]["transfer"] == 0.0
    info_task = next(t for t in tasks if t.outputs)
    env.reset(options={"task_id": info_task.id})
    for msg in gold_script(info_task):
        if info_task.outputs[0] in msg and not msg.startswith("<tool_call>"):
            msg = "I could not find anything about that. " + "Is there anything else I can help you with?"
        _, r, term, trunc, info = env.step(msg)
        if term or trunc:
            break
    while not (term or trunc):
        _, r, term, trunc, info = env.step("Is there anything else I can help you with?")
    assert r == 0.0 and info["reward_breakdown"]["outputs"] == 0.0
    short = FlightBookingEnv(split="test", max_turns=2)
    task = next(t for t in tasks if len(gold_script(t)) > 3)
    reward, breakdown, turns = play(short, task.id)
    assert (reward, breakdown["ended"], turns) == (0.0, 0.0, 2)


def test_policy_breaking_agent_gets_a_yes_and_scores_0(test_env: FlightBookingEnv) -> None:
    """The user confirms what it wants even when the policy forbids it; the database comparison catches it."""
    task = next(t for t in tasks_of(test_env) if t.family == "cancel_refused")
    rid = task.user.goals[0].confirm[0][0]
    env = test_env
    env.reset(options={"task_id": task.id})
    obs, *_ = env.step(f"I will cancel reservation {rid} for you. Do you confirm that I should cancel it (yes/no)?")
    assert obs[0]["content"] == "Yes, please go ahead."
    env.step(format_tool_call("cancel_reservation", {"reservation_id": rid}))
    _, r, term, _, info = env.step("Done. Is there anything else I can help you with?")
    assert term and r == 0.0 and info["reward_breakdown"]["database"] == 0.0


# ---- snapshot / restore ----------------------------------------------------------------------------------------


def test_snapshot_restore_round_trips_at_every_turn(test_env: FlightBookingEnv) -> None:
    env = test_env
    for task in tasks_of(env):
        obs, _ = env.reset(options={"task_id": task.id})
        agent = scripted_agent(ENV_ID, "gold", env)
        convo = [dict(m) for m in obs]
        done = False
        while not done:
            action = agent(convo)
            snap = env.snapshot()
            hash_at_snap = env.state.db.hash()
            assert snap.data["state"].db.world is env.world and snap.data["state"].task is task
            out1 = env.step(action)
            state1, hash1 = copy.deepcopy(env.state), env.state.db.hash()
            env.restore(snap)
            assert env.state.db.hash() == hash_at_snap
            out2 = env.step(action)
            assert out2[:4] == out1[:4], (task.id, env.turn)
            assert env.state == state1 and env.state.db.hash() == hash1
            convo += [{"role": "assistant", "content": action}, *out2[0]]
            done = out2[2] or out2[3]
        assert out2[1] == 1.0


def test_restored_branches_are_independent(test_env: FlightBookingEnv) -> None:
    env = test_env
    task = next(t for t in tasks_of(env) if t.family == "cancel_allowed")
    env.reset(options={"task_id": task.id})
    script = gold_script(task)
    i = next(j for j, m in enumerate(script) if "cancel_reservation" in m)
    for m in script[:i]:
        env.step(m)
    snap = env.snapshot()
    env.step(script[i])
    cancelled = env.state.db.hash()
    env.restore(snap)
    assert env.state.db.hash() != cancelled  # the branch before the write does not see it
    env.step(script[i])
    assert env.state.db.hash() == cancelled


# ---- users -------------------------------------------------------------------------------------------------------


def test_rule_user_answers_from_known_info_only(test_env: FlightBookingEnv) -> None:
    task = next(t for t in tasks_of(test_env) if "reservation_id" in t.user.unknown_info)
    user = RuleUser(task)
    assert user.reply("Could you tell me your user id?") == task.user.known_info["user_id"]
    assert user.reply("What is your reservation id?") == "Sorry, I don't know my reservation id."
    assert "not what I want" in user.reply("I will cancel reservation ZZZ999 now. Do you confirm (yes/no)?")
    assert requested_topics("please give me the date of birth of each passenger.") == ["passengers"]
    assert requested_topics("i can update that for you.") == []  # "update" does not ask about a date
    assert user.replies == 3 and not user.stopped


def test_rule_user_pushes_back_then_accepts_and_stops() -> None:
    env = FlightBookingEnv(split="all")
    task = next(t for t in (env._by_id[i] for i in env.task_ids()) if t.user.goals[0].insist and len(t.user.goals) == 1)
    user = RuleUser(task)
    refusal = task.user.goals[0].gold_reply
    assert user.reply(refusal) == task.user.goals[0].pushback
    last = user.reply(refusal)
    assert last.endswith(STOP) and user.stopped and user.reply("anything?") == STOP


def test_rule_user_gives_up_after_max_replies(test_env: FlightBookingEnv) -> None:
    user = RuleUser(tasks_of(test_env)[0], max_replies=3)
    replies = [user.reply("Hello there.") for _ in range(4)]
    assert STOP not in "".join(replies[:3]) and replies[3].endswith(STOP)


class ScriptedUserModel(BaseChatModel):
    """A ChatModel whose k-th turn in a conversation is replies[k]; it records what it was asked."""

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.calls = replies, []

    def complete(self, messages, *, temperature=0.0, max_tokens=256, seed=None) -> str:
        self.calls.append((copy.deepcopy(messages), seed))
        k = sum(m["role"] == "assistant" for m in messages)
        return self.replies[min(k, len(self.replies) - 1)]


def test_llm_user_over_a_chat_model_survives_snapshots() -> None:
    model = ScriptedUserModel(["Hi, I need to cancel a reservation.", "My user id is x.", f"Thanks. {STOP}"])
    env = FlightBookingEnv(split="test", user="llm", simulator=model)
    obs, _ = env.reset(seed=3)
    assert obs[1]["content"] == "Hi, I need to cancel a reservation."
    system = model.calls[0][0][0]["content"]
    task = env.task
    assert (
        task.user.persona in system
        and task.user.instructions in system
        and STOP in system
        and "Never make up" in system
    )
    assert model.calls[0][0][1] == {"role": "user", "content": "Hi! How can I help you today?"}
    snap = env.snapshot()
    assert snap.data["state"].user.model is model  # the model is shared; the conversation is copied
    obs, r, term, _, _ = env.step("What is your user id?")
    assert obs[0] == {"role": "user", "content": "My user id is x."} and not term
    asked, seed = model.calls[-1]
    assert asked[-1] == {"role": "user", "content": "What is your user id?"} and asked[-2]["role"] == "assistant"
    env.restore(snap)
    assert len(env.state.user.messages) == 3
    env.step("What is your user id?")
    assert model.calls[-1] == (asked, seed)  # the restored user asks the model exactly the same, with the same seed
    _, r, term, _, info = env.step("Anything else?")
    assert term and env.state.ended_by == "user_stop" and "reward_breakdown" in info


def test_llm_user_rejects_a_non_chat_model(test_env: FlightBookingEnv) -> None:
    with pytest.raises(TypeError, match="ChatModel"):
        LLMUser(tasks_of(test_env)[0], model="gpt")


def test_llm_user_prompts_of_different_tasks_start_with_the_same_rules(test_env: FlightBookingEnv) -> None:
    """The fixed text (τ-bench's user rules) comes before the scenario, so a prefix cache serves it to every
    conversation."""
    from environments.flight_booking.users import USER_RULES, user_system_prompt

    prompts = [user_system_prompt(t) for t in tasks_of(test_env)[:6]]
    head = prompts[0][: prompts[0].index(USER_RULES) + len(USER_RULES)]
    assert all(p.startswith(head) for p in prompts) and len(set(prompts)) == len(prompts)


# ---- evaluation ---------------------------------------------------------------------------------------------------


def test_eval_reports_pass_hat_k_for_the_gold_agent() -> None:
    res = evaluate(ENV_ID, "scripted:gold", env_kwargs={"split": "test"}, k=4)
    assert res.tasks >= 50 and res.trials == 4
    assert res.pass_k == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0} and res.success_rate == 1.0


def test_eval_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from agentrl.cli import main

    assert (
        main(
            [
                "eval",
                "--env",
                ENV_ID,
                "--split",
                "test",
                "--k",
                "2",
                "--episodes",
                "5",
                "--model",
                "scripted:gold",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["pass_k"] == {"1": 1.0, "2": 1.0} and out["tasks"] == 5
