"""The metrics users of agent-RL kits look for: pass@k / avg@k / pass^k in `agentrl eval --samples k` (against hand
computations and brute-force enumeration), the sampler/trainer mismatch KL, and `groups/frac_reward_zero_std`."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from agentrl.eval.evaluate import avg_at_k, pass_at_k, pass_hat_k
from agentrl.train.config import PPOConfig
from agentrl.train.metrics import frac_zero_spread
from agentrl.train.update import _drift


def _brute(successes: list[bool], k: int, all_: bool) -> float:
    """Over every k-subset of the n tries: the fraction with any (pass@k) or all (pass^k) successes."""
    subsets = list(itertools.combinations(successes, k))
    return sum((all(s) if all_ else any(s)) for s in subsets) / len(subsets)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_pass_at_k_is_chen_et_als_estimator(k: int) -> None:
    tasks = [[True, False, False, True, False], [False] * 5, [True] * 5, [False, False, False, False, True]]
    assert pass_at_k(tasks, k) == pytest.approx(sum(_brute(t, k, all_=False) for t in tasks) / len(tasks))
    assert pass_hat_k(tasks, k) == pytest.approx(sum(_brute(t, k, all_=True) for t in tasks) / len(tasks))
    assert avg_at_k(tasks) == pytest.approx((2 / 5 + 0 + 1 + 1 / 5) / 4)


def test_pass_at_k_by_hand() -> None:
    # n = 4, c = 1, k = 2: 1 - C(3, 2) / C(4, 2) = 1 - 3/6
    assert pass_at_k([[True, False, False, False]], 2) == 0.5
    assert pass_at_k([[True, False]], 1) == 0.5 and pass_at_k([[True, True]], 2) == 1.0
    with pytest.raises(ValueError, match="pass@3 needs at least 3 trials"):
        pass_at_k([[True, False]], 3)


def test_eval_cli_json_has_pass_at_k_avg_at_k_and_pass_hat_k(capfd: pytest.CaptureFixture[str]) -> None:
    from agentrl.cli import main

    argv = ["eval", "--env", "agentrl/CreditChain-v0", "--model", "scripted:gold", "--episodes", "3"]
    assert main([*argv, "--samples", "3", "--json", "--per-task"]) == 0
    d = json.loads(capfd.readouterr().out)
    succ = [o["successes"] for o in d["outcomes"]]
    assert d["trials"] == 3 and d["k"] == 3 and all(len(s) == 3 for s in succ)
    for j in (1, 2, 3):
        assert d["pass_at_k"][str(j)] == pytest.approx(pass_at_k(succ, j))
        assert d["pass_k"][str(j)] == pytest.approx(pass_hat_k(succ, j))
    assert d["avg_at_k"] == pytest.approx(d["success_rate"])
    assert main([*argv, "--samples", "2"]) == 0
    table = capfd.readouterr().out
    assert "pass@2" in table and "avg@2" in table and "pass^2" in table
    assert main([*argv, "--samples", "3", "--trials", "2"]) == 2
    assert "--samples 3 and --trials 2: both set the samples per task" in capfd.readouterr().err


def test_mismatch_kl_is_k3_per_agent_token() -> None:
    new = torch.tensor([[-1.0, -0.5, -2.0, 0.0]])
    old = torch.tensor([[-1.2, -0.5, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last position is not an agent token: its wild value must not count
    out = _drift([(new, old, mask)], PPOConfig())
    d = [0.2, 0.0, -1.0]  # log rho = new - old on the agent tokens
    want = sum(math.expm1(x) - x for x in d) / 3
    assert out["logprob/mismatch_kl"] == pytest.approx(want)
    assert out["logprob/max_abs_diff"] == pytest.approx(1.0)
    same = _drift([(old, old, mask)], PPOConfig())
    assert same["logprob/mismatch_kl"] == 0.0


def test_frac_zero_spread_counts_groups_with_equal_rewards() -> None:
    from types import SimpleNamespace

    eps = [SimpleNamespace(group_id=g, reward=r) for g, r in [(0, 1.0), (0, 1.0), (1, 0.0), (1, 1.0), (2, 0.0)]]
    assert frac_zero_spread(eps) == pytest.approx(2 / 3)  # group 0 (all 1) and group 2 (one episode)
    assert frac_zero_spread([]) == 0.0
