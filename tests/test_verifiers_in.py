"""verifiers in: environments written against verifiers' classic API (tests/verifiers_envs.py: a multi-turn guessing
game with a two-function rubric, a SingleTurnEnv with an exact-match rubric, a ToolEnv) driven by agentrl's
RolloutRunner through `VerifiersEnv`, and checked against verifiers' own rollout of the same replies: the same
reward, metrics and transcript. Also: task ids are dataset rows, env and rubric failures are env_error, snapshots
branch, `verifiers:NAME` loads an installed environment, and one GRPO update on tiny-random runs through the Trainer.

Needs the `verifiers` package with the classic API (0.2.x-0.3.x); skipped with a printed reason without it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("verifiers", reason="verifiers is not installed (pip install 'agentrl[verifiers]')")
try:
    from environments.verifiers.adapter import import_verifiers

    import_verifiers()
except ImportError as _exc:
    pytest.skip(f"verifiers has no usable classic API here: {_exc}", allow_module_level=True)

import verifiers_envs as E  # noqa: E402

from agentrl.core.chat_format import ChatFormatter  # noqa: E402
from agentrl.core.outcomes import EpisodeEnd, outcome_metrics  # noqa: E402
from agentrl.core.registry import make_env  # noqa: E402
from agentrl.inference.base import Completion, SamplingParams  # noqa: E402
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner  # noqa: E402
from environments.verifiers.adapter import VerifiersEnv, VerifiersEnvError  # noqa: E402

vf = E.vf


class ScriptedPolicy:
    """A policy backend whose reply is `choose(decoded prompt)`, tokenized and closed with EOS."""

    def __init__(self, tok, choose):
        self.tok, self.choose = tok, choose
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def generate(self, prompts, params):
        out = []
        for ids in prompts:
            text = self.choose(self.tok.decode(ids, skip_special_tokens=True))
            toks = self.tok.encode(text, add_special_tokens=False) + [self.tok.eos_token_id]
            out.append(Completion(toks, [0.0] * len(toks), "stop"))
        return out

    def update_weights(self, state_dict):
        pass

    def close(self):
        pass


class ScriptedClient(vf.Client):
    """verifiers' own side of the comparison: a vf.Client whose reply is `choose(the prompt's text)`."""

    def __init__(self, choose):
        super().__init__(None)
        self.choose = choose

    def setup_client(self, config):
        return None

    async def to_native_tool(self, tool):
        return tool

    async def to_native_prompt(self, messages):
        return messages, {}

    async def get_native_response(self, prompt, model, sampling_args, tools=None, **kwargs):
        text = self.choose("\n".join(str(m.content) for m in prompt))
        msg = vf.types.ResponseMessage(content=text, finish_reason="stop", is_truncated=False)
        return vf.types.Response(id=uuid.uuid4().hex, created=int(time.time()), model=model, message=msg)

    async def raise_from_native_response(self, response):
        return None

    async def from_native_response(self, response):
        return response

    async def close(self):
        return None


def verifiers_rollout(env, row: dict, choose) -> dict:
    """verifiers' own rollout and scoring of one dataset row (what `run_rollout` does, without its output mapping)."""

    async def go():
        state = await env.rollout(row, ScriptedClient(choose), "scripted", {})
        await env.rubric.score_rollout(state)
        return state

    return asyncio.run(go())


def runner(tiny, make, choose, **kw) -> RolloutRunner:
    _, tok = tiny
    return RolloutRunner(
        make, ScriptedPolicy(tok, choose), ChatFormatter(tok), SamplingParams(temperature=1.0, max_new_tokens=8), **kw
    )


def test_guessing_game_through_the_runner_matches_verifiers_own_rollout(tiny) -> None:
    vf_env = E.GuessEnv()
    r = runner(tiny, lambda: VerifiersEnv(vf_env), E.bisect_guess)
    eps = r.collect([EpisodeSpec(seed=i, task_id=str(i), group_id=i) for i in range(3)])
    for ep in eps:
        row = dict(vf_env.get_dataset()[int(ep.task_id)])
        ref = verifiers_rollout(vf_env, row, E.bisect_guess)
        assert ep.end is EpisodeEnd.TERMINATED and ep.error is None
        assert ep.reward == pytest.approx(ref["reward"]) and ep.reward > 1.0  # solved, plus the weighted speed
        assert ep.metrics.get("turns", len(ep.turns)) == len(ref["trajectory"])
        assert [t.text for t in ep.turns] == [m.content for m in ref["completion"] if m.role == "assistant"]
    # the outcome's breakdown is the rubric's per-function scores
    env = VerifiersEnv(vf_env)
    env.reset(options={"task_id": "2"})
    for guess in ("5", "8", "9", "10"):
        obs, reward, terminated, truncated, info = env.step(guess)
    ref = verifiers_rollout(vf_env, env.row("2"), E.bisect_guess)
    assert terminated and not truncated and obs == ({"role": "user", "content": "Correct!"},)
    assert reward == pytest.approx(ref["reward"]) == pytest.approx(1.0 + 0.5 / 4)
    assert info["reward_breakdown"] == pytest.approx(ref["metrics"])
    assert set(info["reward_breakdown"]) == {"guess_correct", "guess_speed", "num_turns"}
    # the transcript is verifiers' prompt and completion
    ref_msgs = [(m.role, m.content) for m in [*ref["prompt"], *ref["completion"]]]
    assert [(m.role, m.content) for m in env.transcript] == ref_msgs


def test_task_ids_are_dataset_rows_and_the_prompt_is_the_rows() -> None:
    env = VerifiersEnv(E.capital_env())
    assert env.task_ids() == ["0", "1"] and env.row("1")["answer"] == "Tokyo"
    obs, info = env.reset(options={"task_id": "1"})
    assert obs == (
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "Capital of Japan?"},
    )
    assert info["task_id"] == "1" and env.prompt().tools == ()
    obs, reward, terminated, _, info = env.step("Tokyo")
    assert (obs, reward, terminated, info["success"]) == ((), 1.0, True, True)
    assert info["reward_breakdown"] == {"exact_match": 1.0, "num_turns": 1.0}
    env.reset(options={"task_id": "0"})
    assert env.step("Tokyo")[1] == 0.0
    with pytest.raises(ValueError, match="unknown task_id"):
        env.reset(options={"task_id": "2"})


def test_few_shot_prompts_fold_into_the_opening_or_are_refused() -> None:
    shots = [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome"}]
    env = VerifiersEnv(E.capital_env(few_shot=shots))
    obs, _ = env.reset(options={"task_id": "0"})
    assert obs[1]["content"] == "[user]\nCapital of Italy?\n\n[assistant]\nRome\n\n[user]\nCapital of France?"
    strict = VerifiersEnv(E.capital_env(few_shot=shots), prompt_messages="strict")
    with pytest.raises(VerifiersEnvError, match="few-shot"):
        strict.reset(options={"task_id": "0"})


def test_tool_env_reads_hermes_tool_calls_as_openai_tool_calls(tool_call) -> None:
    env = VerifiersEnv(E.adder_env())
    obs, info = env.reset(options={"task_id": "0"})
    (schema,) = env.prompt().tools
    assert schema["function"]["name"] == "add" and set(schema["function"]["parameters"]["required"]) == {"a", "b"}
    assert "<tool_call>" in obs[0]["content"] and info["tools"] == [schema]
    obs, reward, terminated, _, _ = env.step("Let me add. " + tool_call("add", a=2, b=3))
    assert obs == ({"role": "tool", "content": "5"},) and not terminated
    step = env.state["vf"]["trajectory"][-1]["completion"][-1]
    assert step.content == "Let me add." and step.tool_calls[0].name == "add"
    assert json.loads(step.tool_calls[0].arguments) == {"a": 2, "b": 3}
    obs, reward, terminated, _, info = env.step("5")  # no tool call: ToolEnv's no_tools_called stops
    assert terminated and reward == 1.0
    assert info["reward_breakdown"] == {"sum_answer": 1.0, "num_turns": 2.0, "total_tool_calls": 1.0, "add_calls": 1.0}
    # a malformed call stays text (as a serving engine's parser leaves it) and counts as malformed_call
    env.reset(options={"task_id": "0"})
    _, reward, terminated, _, info = env.step('<tool_call>{"name": "add"</tool_call>')
    assert terminated and reward == 0.0 and info["errors"] == {"malformed_call": 1}


def test_env_and_rubric_failures_are_env_errors(tiny) -> None:
    r = runner(tiny, lambda: VerifiersEnv(E.GuessEnv(fail_on="8")), E.bisect_guess)
    eps = r.collect([EpisodeSpec(seed=i, task_id=str(i), group_id=i) for i in range(3)])
    ends = {ep.task_id: ep.end for ep in eps}
    # 7 and 10 are guessed 5 then 8 (the env raises on 8); 3 is guessed 5, 2, 3
    assert ends == {"0": EpisodeEnd.ENV_ERROR, "1": EpisodeEnd.TERMINATED, "2": EpisodeEnd.ENV_ERROR}
    assert "the guessing game broke" in next(ep.error for ep in eps if ep.task_id == "0")
    assert outcome_metrics(eps)["episode/outcome/env_error"] == 2.0
    r = runner(tiny, lambda: VerifiersEnv(E.broken_rubric_env()), lambda text: "hi")
    (ep,) = r.collect([EpisodeSpec(seed=0, task_id="0")])
    assert ep.end is EpisodeEnd.ENV_ERROR and "the reward function broke" in ep.error
    # verifiers itself scores a reward function that raised as 0: strict_rubric=False does the same
    env = VerifiersEnv(E.broken_rubric_env(), strict_rubric=False)
    env.reset()
    assert env.step("hi")[1:3] == (0.0, True)


def test_snapshot_and_restore_branch_the_verifiers_state() -> None:
    env = VerifiersEnv(E.GuessEnv())
    env.reset(options={"task_id": "0"})
    env.step("5")
    snap = env.snapshot()
    _, reward, terminated, _, _ = env.step("7")
    assert terminated and reward == pytest.approx(1.0 + 0.5 / 2)
    env.restore(snap)
    obs, reward, terminated, _, _ = env.step("6")
    assert obs == ({"role": "user", "content": "higher"},) and not terminated
    assert env.state["vf"]["guesses"] == ["5", "6"]
    env.restore(snap)
    assert env.step("7")[1] == pytest.approx(1.0 + 0.5 / 2)


def test_unadaptable_envs_are_refused() -> None:
    async def group_reward(completions, **kwargs) -> list[float]:
        return [0.0] * len(completions)

    env = E.capital_env()
    env.rubric.add_reward_func(group_reward)
    with pytest.raises(ValueError, match="group reward"):
        VerifiersEnv(env)
    with pytest.raises(ValueError, match="not a verifiers MultiTurnEnv"):
        VerifiersEnv(object())


def test_the_id_prefix_loads_an_installed_environment() -> None:
    env = make_env("verifiers:verifiers_envs", env_args={"fail_on": "9"}).unwrapped
    assert isinstance(env, VerifiersEnv) and isinstance(env.vf_env, E.GuessEnv) and env.vf_env.fail_on == "9"
    assert env.task_ids() == ["0", "1", "2"]
    assert make_env("verifiers:verifiers_envs", env_args={"fail_on": "9"}).unwrapped.vf_env is env.vf_env


@pytest.mark.slow
def test_trains_one_grpo_update_on_tiny_random(tmp_path: Path) -> None:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    run = tmp_path / "run"
    cfg = load_config(
        None,
        [
            "model=tiny-random",
            "env.id=verifiers:verifiers_envs",
            "algorithm.name=grpo",
            "rollout.groups=1",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "train.updates=1",
            "ppo.minibatch_size=2",
            "ppo.micro_batch_size=2",
            f"train.run_dir={run}",
        ],
    )
    Trainer(cfg, console=False).run()
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert row["tokens/sampled"] > 0 and 0.0 <= row["reward/mean"] <= 1.5
    assert row.get("episode/outcome/env_error", 0) == 0
