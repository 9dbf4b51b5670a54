"""Extra sampling some estimators need before advantages can be computed.

* TRePO (DESIGN.md step 2): Monte-Carlo values at branch points. For each point t of each episode,
  V̂(t) = mean RM over M continuations from W_<t plus every other sampled episode sharing W_<t
  (and W itself); B̂(t), the baseline side of an advantage, is the same mean without W's own return.
  A point whose prefix is already shared by at least M other episodes (the first turn: the group's G
  episodes share the prompt) gets no continuations: its value costs nothing extra. Continuations sample
  at the policy's temperature unless `branch_t_min` asks for lower ones. The continuations are kept with their
  returns and, for each, the returns of the other samples from its prefix, so that with
  `params.train_continuations` the trainer adds them as rows (`trepo.continuation_rows`).
* ReMax: one greedy rollout per task as the baseline.

"RM" is each episode's return as `returns` scores it: the raw reward, or RM − β·KL with `ppo.kl_in_reward`
(`reward_shaping.py`), applied alike to sampled episodes, continuations and baselines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from agentrl.algo.advantages import (
    branch_temperatures,
    divergence_points,
    mc_baseline,
    mc_value,
    select_branch_points,
    shared_prefix_values,
)
from agentrl.core.types import Episode
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.reward_shaping import Returns, raw_rewards


@dataclass
class BranchValues:
    positions: list[list[int]]  # per episode, ascending branch positions
    values: list[list[float]]  # per episode, V̂ at each position
    baselines: list[list[float]]  # per episode, V̂ at each position without the episode's own return (B̂)
    tokens: int  # tokens sampled by the continuations (the extra cost of TRePO)
    continuations: int
    # the continuations themselves (trained as rows with `params.train_continuations`), each one's return, and the
    # returns of the other samples from its prefix (its parent, the other continuations from the point, the episodes
    # sharing the prefix; never itself); None for a continuation that an infrastructure failure ended (no return)
    episodes: list[Episode] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    others: list[list[float] | None] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Continuations that an env or simulator failure (or a timeout) ended: in no value, never trained."""
        return sum(1 for o in self.others if o is None)

    def trainable(self, temperature: float) -> tuple[list[int], int]:
        """Indices of the continuations to train on, and how many were left out for their temperature. A continuation
        is an on-policy sample, and its logprobs the ones the update's ratio compares, only where every token it
        sampled was at the policy's temperature (`branch_t_min` gives lower ones: left out); one that an
        infrastructure failure ended has no return (left out, counted in `failed`)."""
        keep, off_temperature = [], 0
        for i, (c, o) in enumerate(zip(self.episodes, self.others)):
            if o is None:
                continue
            if any(t.temperature != temperature for t in c.turns):
                off_temperature += 1
                continue
            keep.append(i)
        return keep, off_temperature


def estimate_branch_values(
    runner: RolloutRunner,
    episodes: list[Episode],
    *,
    spec: str,
    m: int,
    t_min: float | None,
    t_max: float,
    point_seed: int = 0,
    common_random_numbers: bool = False,
    episode_returns: list[float] | None = None,
    returns: Returns = raw_rewards,
) -> BranchValues:
    """episode_returns: the episodes' own returns if already scored (else `returns(episodes)`).
    t_min None: continuations sample at t_max, the policy's temperature.
    point_seed: the random point specs ("random:k", "sample:q") draw an episode's points from (point_seed, its uid)
    alone, so they do not depend on the other episodes of the batch (a rank draws what one process would)."""
    positions: list[list[int]] = []
    for ep in episodes:
        agent_pos = [i for i, a in enumerate(ep.action_mask) if a]
        rng = random.Random(f"agentrl-branch-points:{point_seed}:{ep.uid}")
        positions.append(select_branch_points(ep.turn_starts, agent_pos, spec, rng) if agent_pos else [])
    seqs = [ep.input_ids for ep in episodes]
    if spec.strip() == "divergence":  # the turn starts shared with another episode, and the first one alone
        positions = divergence_points(seqs, positions)
    rewards = returns(episodes) if episode_returns is None else list(episode_returns)
    sharing = shared_prefix_values(seqs, rewards, positions)
    temps = branch_temperatures(m, t_max if t_min is None else t_min, t_max)
    requests = []
    for i, ep in enumerate(episodes):
        for j, pos in enumerate(positions[i]):
            if len(sharing[i][j]) < m:
                requests.append((ep, pos, temps))
    conts = runner.branch_many(requests, common_random_numbers=common_random_numbers) if requests else []
    by_point: dict[tuple[int, int], list[float]] = {}
    tokens = 0
    cont_returns = [float(r) for r in returns(conts)] if conts else []
    for c, r in zip(conts, cont_returns):
        point = _point(c)
        if c.end is None or not c.end.infra:  # a continuation that an env/simulator failure ended has no return
            by_point.setdefault(point, []).append(r)
        tokens += len(c.input_ids) - point[1]  # everything after the branch point was sampled or env
        # env tokens after the point were not sampled: every turn's reply that follows it (the branched turn's too)
        tokens -= sum(len(t.env_ids) for t in c.turns if t.start + len(t.sampled_ids) >= point[1])
    values = [
        [mc_value(rewards[i], by_point.get((ep.uid, pos), []), sharing[i][j]) for j, pos in enumerate(positions[i])]
        for i, ep in enumerate(episodes)
    ]
    baselines = [  # no other sample at a point (every continuation failed): B̂ falls back to V̂
        [
            b if (b := mc_baseline(by_point.get((ep.uid, pos), []), sharing[i][j])) is not None else values[i][j]
            for j, pos in enumerate(positions[i])
        ]
        for i, ep in enumerate(episodes)
    ]
    for c in conts:  # never branched from again: the env snapshots they hold can go now
        c.snapshots = {}
    # each continuation's baseline side leaves itself out: the parent, its usable siblings, the sharing episodes
    where = {(ep.uid, pos): (i, j) for i, ep in enumerate(episodes) for j, pos in enumerate(positions[i])}
    usable: dict[tuple[int, int], list[int]] = {}
    for k, c in enumerate(conts):
        if c.end is None or not c.end.infra:
            usable.setdefault(_point(c), []).append(k)
    others: list[list[float] | None] = []
    for k, c in enumerate(conts):
        if c.end is not None and c.end.infra:
            others.append(None)
            continue
        point = _point(c)
        i, j = where[point]
        siblings = [cont_returns[m] for m in usable[point] if m != k]
        others.append([float(rewards[i]), *siblings, *sharing[i][j]])
    return BranchValues(positions, values, baselines, tokens, len(conts), list(conts), cont_returns, others)


def _point(c: Episode) -> tuple[int, int]:
    """A continuation's branch point: (the uid of the episode it branched from, the token position)."""
    assert c.parent_uid is not None and c.branch_pos is not None, "branch_many sets both on every continuation"
    return c.parent_uid, c.branch_pos


def greedy_baselines(
    runner: RolloutRunner, episodes: list[Episode], specs: list[EpisodeSpec], *, returns: Returns = raw_rewards
) -> tuple[list[float], int]:
    """ReMax: return of one greedy rollout per group, broadcast to the group's episodes. Each is keyed by its group
    and the key of the group's first spec (the trainer's: step and group), never by what else was sampled."""
    firsts: dict[int, EpisodeSpec] = {}
    for s in specs:
        firsts.setdefault(s.group_id, s)
    greedy_specs = [
        replace(s, sampling=replace(runner.sampling, temperature=0.0), key=("greedy", s.group_id, s.key))
        for s in firsts.values()
    ]
    greedy = runner.collect(greedy_specs)
    by_group = {s.group_id: r for s, r in zip(greedy_specs, returns(greedy))}
    return [by_group[ep.group_id] for ep in episodes], sum(g.num_sampled for g in greedy)
