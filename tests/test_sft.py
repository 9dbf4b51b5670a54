"""`agentrl sft`: demonstrations are token-exact with rollouts, transcripts of both formats load (and bad ones
are refused by line), the loss is the assistant tokens' NLL, and a tiny model trained on demonstrations
evaluates higher on held-out tasks than before."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import torch

from agentrl.cli import main as cli_main
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.registry import load_env_plugins, make_env, scripted_factory
from agentrl.eval.evaluate import evaluate, play_scripted
from agentrl.inference.base import Completion, SamplingParams
from agentrl.inference.models import load_model
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.sft import (
    collate_demos,
    demos_from_jsonl,
    demos_from_scripted,
    make_batches,
    run_sft,
    sft_loss,
    split_messages,
)
from agentrl.train.sft_config import from_flags

load_env_plugins()

CREDIT = "agentrl/CreditChain-v0"


class ReplayPolicy:
    """A policy backend that 'samples' a demonstration's next assistant segment: the rollout built around it
    must reproduce the demonstration's ids and mask exactly."""

    def __init__(self, demos):
        self.demos = demos

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            demo = next(d for d in self.demos if d.input_ids[: len(p)] == p and len(d.input_ids) > len(p))
            end = len(p)
            while end < len(demo.input_ids) and demo.loss_mask[end]:
                end += 1
            assert demo.loss_mask[len(p)] == 1, "the rollout asked for a turn where the demonstration has env tokens"
            out.append(Completion(demo.input_ids[len(p) : end], [0.0] * (end - len(p)), "stop"))
        return out

    def update_weights(self, state_dict) -> None:
        pass


@pytest.mark.parametrize(
    "env_id,kwargs,agent",
    [
        ("agentrl/ToolUse-v0", {"split": "train", "tier": 2}, "gold"),
        (CREDIT, {"turns": 3}, "gold"),
        ("agentrl/Consultation-v0", {"split": "train"}, "good"),
        ("agentrl/FlightBooking-v0", {"split": "train"}, "gold"),
    ],
)
def test_scripted_demos_are_token_exact_with_rollouts(tiny, env_id, kwargs, agent) -> None:
    _, tok = tiny
    fmt = ChatFormatter(tok)
    demos, stats = demos_from_scripted(env_id, kwargs, agent, fmt, episodes=4, seed=5)
    assert stats["demos/kept"] == 4
    env = make_env(env_id, **kwargs).unwrapped
    ids = env.task_ids()
    specs = [EpisodeSpec(seed=5 + i, task_id=ids[i] if ids else None, group_id=i) for i in range(4)]
    runner = RolloutRunner(
        lambda: make_env(env_id, **kwargs),
        ReplayPolicy(demos),
        fmt,
        SamplingParams(max_new_tokens=512),
        max_seq_len=16_384,
    )
    eps = sorted(runner.collect(specs), key=lambda e: e.group_id)
    for ep, demo in zip(eps, demos):
        assert ep.input_ids == demo.input_ids
        assert ep.action_mask == demo.loss_mask
        assert ep.success
    assert sum(ep.reward for ep in eps) / 4 == pytest.approx(stats["demos/mean_reward"])  # the same episodes, replayed
    # the loss covers exactly the agent's texts and their end-of-turn tokens
    d = demos[0]
    agent = tok.decode([t for t, m in zip(d.input_ids, d.loss_mask) if m], skip_special_tokens=True)
    assert agent == "".join(t.text for t in eps[0].turns)


def test_transcript_formats_and_roles(tmp_path: Path, tiny) -> None:
    _, tok = tiny
    fmt = ChatFormatter(tok)
    consult = {
        "id": "c1",
        "doctor": "x",
        "messages": [
            {"role": "system", "content": "You are a doctor."},
            {"role": "patient", "content": "I have a cough."},
            {"role": "doctor", "content": "Any fever?"},
            {"role": "patient", "content": "Yes."},
            {"role": "doctor", "content": "DIAGNOSIS: flu"},
        ],
    }
    openai = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": '<tool_call>{"name": "calc", "arguments": {}}</tool_call>'},
            {"role": "tool", "content": "4"},
            {"role": "assistant", "content": "4"},
        ]
    }
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(consult) + "\n\n" + json.dumps(openai) + "\n")
    demos = demos_from_jsonl(path, fmt)
    assert len(demos) == 2
    texts = [tok.decode([t for t, m in zip(d.input_ids, d.loss_mask) if m], skip_special_tokens=True) for d in demos]
    assert texts == ["Any fever?DIAGNOSIS: flu", '<tool_call>{"name": "calc", "arguments": {}}</tool_call>4']
    whole = tok.decode(demos[0].input_ids)
    assert (
        "<|im_start|>user\nYes.<|im_end|>" in whole and "<|im_start|>user\nI have a cough." in whole
    )  # patient -> user
    opening, turns = split_messages(openai["messages"], "x")
    assert [m["role"] for m in opening] == ["system", "user"] and turns[0][1] == [{"role": "tool", "content": "4"}]


@pytest.mark.parametrize(
    "line,needle",
    [
        ("not json", "t.jsonl:2: not valid JSON"),
        ('{"conversation": []}', "t.jsonl:2: each line must be an object with a 'messages' list"),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', "t.jsonl:2: the first message is the assistant's"),
        (
            '{"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]}',
            "role 'robot'; allowed:",
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null}]}',
            "has no text content",
        ),
        ('{"messages": [{"role": "user", "content": "q"}]}', "no assistant message"),
    ],
)
def test_bad_transcripts_name_the_line(tmp_path: Path, tiny, line: str, needle: str, capsys) -> None:
    path = tmp_path / "t.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    assert len(demos_from_jsonl(path, ChatFormatter(tiny[1]))) == 1  # the bad line is skipped, the good one loads
    assert needle in capsys.readouterr().err
    path.write_text(line + "\n")  # no good line: an error naming the reason
    with pytest.raises(ValueError, match=re.escape(needle.split(":2: ")[-1])):
        demos_from_jsonl(path, ChatFormatter(tiny[1]))


def test_sft_loss_is_token_mean_nll_and_accumulates() -> None:
    lp = torch.tensor([[0.0, -1.0, -2.0, -3.0], [0.0, -0.5, -9.0, 0.0]])
    m = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert math.isclose(float(sft_loss(lp, m, 3)), (1.0 + 2.0 + 0.5) / 3, rel_tol=1e-6)
    # two micro-batches divided by the whole batch's token count add up to the whole batch's mean
    parts = float(sft_loss(lp[:1], m[:1], 3)) + float(sft_loss(lp[1:], m[1:], 3))
    assert math.isclose(parts, float(sft_loss(lp, m, 3)), rel_tol=1e-6)


def test_batches_cover_every_demo_once_and_bucket_by_length() -> None:
    lengths = [random.Random(i).randint(10, 500) for i in range(100)]
    for bucket in (True, False):
        batches = make_batches(lengths, 8, random.Random(0), bucket)
        assert sorted(i for b in batches for i in b) == list(range(100))
    spread = lambda bs: sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in bs)  # noqa: E731
    assert (
        spread(make_batches(lengths, 8, random.Random(0), True))
        < spread(make_batches(lengths, 8, random.Random(0), False)) / 3
    )


def test_collate_pads_right_and_masks() -> None:
    from agentrl.train.sft import Demo

    ids, attn, lm = collate_demos([Demo([5, 6, 7], [0, 1, 1]), Demo([8], [1])], pad_id=2)
    assert ids.tolist() == [[5, 6, 7], [8, 2, 2]] and attn.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert lm.tolist() == [[0, 1, 1], [1, 0, 0]]


def _credit_eval(model: str) -> float:
    # held out: seeds the demonstrations never used; greedy, unconstrained (the model must emit the digit itself)
    return evaluate(
        CREDIT, model, env_kwargs={"turns": 2}, tasks=16, seed=10_000, temperature=0.0, max_new_tokens=4
    ).success_rate


SFT_FAST = dict(model="tiny-random", epochs=12, lr=3e-3, batch_size=8, micro_batch_size=4, schedule="constant")


def test_sft_from_scripted_gold_raises_held_out_success(tmp_path: Path) -> None:
    run = tmp_path / "sft"
    cfg = from_flags(
        source="scripted:gold", env=CREDIT, env_kwargs={"turns": 2}, episodes=64, run_dir=str(run), **SFT_FAST
    )
    run_sft(cfg, progress=False)
    base, after = _credit_eval("tiny-random"), _credit_eval(str(run))
    print(f"held-out success: base {base:.2f} -> after SFT {after:.2f}")
    assert base <= 0.1
    assert after >= base + 0.6
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 * 8 and rows[-1]["loss/sft"] < rows[0]["loss/sft"] / 10


def test_sft_from_transcript_file_raises_held_out_success(tmp_path: Path) -> None:
    env = make_env(CREDIT, turns=2).unwrapped
    lines = []
    for seed in range(64):  # gold dialogs written as OpenAI-style transcripts
        ep = play_scripted(env, scripted_factory(CREDIT, "gold"), seed=seed, task=None)
        convo = ep.opening + [m for text, msgs in ep.turns for m in [{"role": "assistant", "content": text}, *msgs]]
        lines.append(json.dumps({"messages": convo}))
    data = tmp_path / "dialogs.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "sft"
    run_sft(from_flags(source=str(data), run_dir=str(run), **SFT_FAST), progress=False)
    after = _credit_eval(str(run))
    assert after >= _credit_eval("tiny-random") + 0.6


def test_cli_sft_run_dir_feeds_train_and_eval(tmp_path: Path, capsys) -> None:
    run = tmp_path / "sft"
    args = [
        "sft",
        "--from",
        "scripted:gold",
        "--env",
        CREDIT,
        "--env-kwargs",
        '{"turns": 2}',
        "--episodes",
        "8",
        "--model",
        "tiny-random",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(run),
        "--report",
    ]
    assert cli_main(args) == 0
    assert (run / "checkpoints" / "step_000002" / "model" / "config.json").exists()
    assert (run / "report" / "sft_loss.png").exists()
    model, _ = load_model(str(run))
    assert sum(p.numel() for p in model.parameters()) > 0
    # a non-empty run dir is refused (nothing cleared), --overwrite clears it
    before = sorted(p.name for p in run.iterdir())
    assert cli_main(args) == 2
    assert "already holds a run" in capsys.readouterr().err and sorted(p.name for p in run.iterdir()) == before
    assert cli_main(args + ["--overwrite"]) == 0
    # bad options name the flag
    assert (
        cli_main(["sft", "--from", "scripted:gold", "--env", CREDIT, "--lr", "-1", "--out", str(tmp_path / "x")]) == 2
    )
    assert "--lr" in capsys.readouterr().err
    assert cli_main(["sft", "--from", "scripted:gold", "--out", str(tmp_path / "y"), "--model", "tiny-random"]) == 2
    assert "needs --env" in capsys.readouterr().err
    # RL starts from the SFT checkpoint
    train = [
        "train",
        f"model={run}",
        f"env.id={CREDIT}",
        "env.kwargs={turns: 2}",
        "algorithm.name=grpo",
        "train.updates=1",
        "rollout.groups=1",
        "rollout.group_size=2",
        "rollout.max_new_tokens=4",
        "ppo.minibatch_size=2",
        "ppo.micro_batch_size=2",
        f"train.run_dir={tmp_path / 'rl'}",
    ]
    assert cli_main(train) == 0
    assert (tmp_path / "rl" / "checkpoints" / "step_000001").exists()


def test_sft_eval_every_logs_a_rising_held_out_curve(tmp_path: Path) -> None:
    run = tmp_path / "sft"
    cfg = from_flags(
        source="scripted:gold",
        env=CREDIT,
        env_kwargs={"turns": 2},
        episodes=64,
        run_dir=str(run),
        eval_every=48,
        eval_tasks=16,
        eval_max_new_tokens=4,
        **SFT_FAST,
    )
    run_sft(cfg, progress=False)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval/success_rate"]) for r in rows if "eval/success_rate" in r]
    assert [s for s, _ in curve] == [0, 48, 96]
    assert curve[-1][1] >= curve[0][1] + 0.6
    with pytest.raises(ValueError, match="needs --env"):
        from_flags(source=str(tmp_path / "x.jsonl"), eval_every=1, **SFT_FAST)
