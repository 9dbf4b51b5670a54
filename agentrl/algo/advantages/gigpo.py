"""GiGPO: episode-level group advantages plus step-level advantages within groups of identical anchor states.

Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent Training" (NeurIPS 2025, arXiv:2505.10978),
checked against verl-agent's `gigpo/core_gigpo.py` (`compute_gigpo_outcome_advantage` and its helpers).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from .base import AdvantageInputs, AdvantageOutput, check_inputs
from .grpo import grpo


def gigpo(
    inp: AdvantageInputs, *, step_weight: float = 1.0, gamma: float = 0.95, scale_std: bool = True, eps: float = 1e-6
) -> AdvantageOutput:
    """A = A_episode + step_weight · A_step on every agent token of turn k of episode i (the paper's Eq. 8).

    * A_episode (Eq. 3): GRPO's (R_i − mean_g) / (std_g + eps) over the episodes of group g (`grpo`, unbiased
      std), so step_weight=0 is exactly GRPO. verl-agent's default takes the mean and std over the group's
      *steps* (`compute_mean_std_cross_steps`), which weights long episodes more; we follow the paper's
      per-trajectory form. Groups of one episode get 0 (verl-agent would keep R_i itself).
    * Step returns (Eq. 5): with one terminal reward R_i, the discounted return of turn k of an episode with n
      turns is γ^(n−k−1) · R_i (the last turn gets R_i). k and n count the turns with agent tokens
      (`turn_starts`).
    * Anchor groups (Eq. 6): the turns of group g's episodes whose `turn_anchors` key is equal, i.e. the same env
      snapshot after the same messages (`rollout/anchors.py`; verl-agent compares the current observation).
    * A_step (Eq. 7): (return − mean) / (std + eps) within the anchor group (unbiased std, as verl-agent's
      `torch.std`); an anchor group of one turn gets 0, as in verl-agent (its mean is its own return).
    * scale_std=False drops both divisions (verl-agent's `mode="mean_norm"`, a Dr. GRPO-style variant); the
      paper's experiments use `mean_std_norm`, our default. gamma defaults to verl-agent's 0.95.

    * Episode length (tests/test_length_bias.py): the episode level sees only R, so no length enters it. The step
      level with gamma < 1 optimises E[γ^(turns left) · R], an explicit length penalty (with R > 0; with R < 0 a
      bonus for going on): two turns from one anchor whose episodes earn the same R get different step returns when
      one stops sooner. gamma=1 makes it unbiased for E[R] (one slope per anchor state, none per action).

    inp.turn_anchors: per episode, one key per entry of `turn_starts`. Raises ValueError without them.
    """
    B, T = check_inputs(inp)
    anchors = inp.turn_anchors
    if anchors is None:
        raise ValueError("gigpo needs turn_anchors (collect with anchor_turns=True: its spec's needs_anchor_states)")
    if len(anchors) != B:
        raise ValueError(f"turn_anchors must have one list per episode ({B}), got {len(anchors)}")
    checked: list[list[str]] = []
    for i, (given, starts) in enumerate(zip(anchors, inp.turn_starts)):
        strs = [k for k in given if isinstance(k, str)]
        if len(given) != len(starts) or len(strs) != len(given):
            raise ValueError(
                f"episode {i}: turn_anchors must hold one str key per turn start ({len(starts)}), got {given!r}"
            )
        checked.append(strs)

    # step returns, gathered by (group, anchor)
    rewards = inp.rewards.to(torch.float64).tolist()
    groups: dict[tuple[int, str], list[tuple[int, int, float]]] = defaultdict(list)
    for i, (keys, gid) in enumerate(zip(checked, inp.group_ids.tolist())):
        n = len(keys)
        for k, key in enumerate(keys):
            groups[(gid, key)].append((i, k, gamma ** (n - k - 1) * rewards[i]))

    step = torch.zeros(B, T, dtype=torch.float64)
    for members in groups.values():
        if len(members) < 2:
            continue  # no other step from this state: no baseline, advantage 0
        ret = torch.tensor([r for _, _, r in members], dtype=torch.float64)
        a = ret - ret.mean()
        if scale_std:
            a = a / (ret.std() + eps)
        for (i, k, _), v in zip(members, a.tolist()):
            starts = inp.turn_starts[i]
            step[i, starts[k] : starts[k + 1] if k + 1 < len(starts) else T] = v

    episode = grpo(inp, eps=eps, scale_std=scale_std).advantages.to(torch.float64)
    total = episode + step_weight * step
    mask = inp.action_mask > 0
    return AdvantageOutput(advantages=torch.where(mask, total, torch.zeros((), dtype=torch.float64)).to(torch.float32))
