"""Evaluation: success rate, mean reward, pass@k, avg@k and pass^k, mean turns.

For a task tried n times with c successes (n >= k), each estimated without bias and averaged over tasks:
- pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): the chance that at least
  one of k i.i.d. tries succeeds, 1 − C(n − c, k) / C(n, k);
- pass^k (Yao et al. 2024, τ-bench §4): the chance that k i.i.d. tries ALL succeed, C(c, k) / C(n, k);
- avg@k: the expected success rate of k tries, c / n (the same for every k: it is the success rate, reported
  under the name the field uses).
Success is the env's `info["success"]` where the env defines it, else reward >= 1.

Agents are either a token policy (a model name: run through `RolloutRunner`, as in training) or a text agent
driven at the text level (`play_scripted`): `scripted:NAME`, a rule-based agent registered for the env id
(`agentrl.core.registry.scripted_agents`), or `MODEL@http(s)://HOST/v1`, a chat endpoint (`chat_agent`).
`agentrl consult run` is this evaluation of a doctor on Consultation-v0, plus its dialog records (`on_episode`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any

from agentrl.core.errors import UsageError, usage_errors
from agentrl.core.registry import ScriptedFactory, scripted_factory
from agentrl.eval.task_files import check_task_ids, read_task_ids
from agentrl.rollout.build import ResolvedEnv, build_runner, resolve_env


@dataclass
class TaskOutcome:
    task_id: str
    rewards: list[float]
    successes: list[bool]
    turns: list[int]
    failed: int = 0  # trials ended by an infrastructure failure (env error, simulator error, timeout): scored 0


@dataclass
class EvalResult:
    env: str
    model: str
    tasks: int
    trials: int
    k: int
    success_rate: float
    mean_reward: float
    pass_k: dict[int, float]  # pass^k (all k succeed) for k = 1..k
    mean_turns: float
    failed: int = (
        0  # episodes ended by an infrastructure failure (`core/outcomes.py`), counted in the rates as failures
    )
    simulator: str | None = None  # the model playing the env's simulated user / patient, if one did
    pass_at_k: dict[int, float] = field(default_factory=dict)  # pass@k (at least one of k succeeds) for k = 1..k
    avg_at_k: float = 0.0  # avg@k: the mean success of the samples (each task's c / n, averaged)
    outcomes: list[TaskOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            ("env", self.env),
            ("model", self.model),
            *([("simulator", self.simulator)] if self.simulator else []),
            ("tasks x trials", f"{self.tasks} x {self.trials}"),
            ("success rate", f"{self.success_rate:.3f}"),
            ("mean reward", f"{self.mean_reward:.3f}"),
            *[(f"pass@{k}", f"{v:.3f}") for k, v in sorted(self.pass_at_k.items())],
            (f"avg@{self.k}", f"{self.avg_at_k:.3f}"),
            *[(f"pass^{k}", f"{v:.3f}") for k, v in sorted(self.pass_k.items())],
            ("mean turns", f"{self.mean_turns:.2f}"),
            ("failed episodes", str(self.failed)),
        ]
        w = max(len(a) for a, _ in rows)
        return "\n".join(f"{a.ljust(w)}  {b}" for a, b in rows)


def _mean_over_tasks(successes_per_task: list[list[bool]], k: int, name: str, value) -> float:
    """Mean over tasks of value(n, c) (n trials, c successes); every task needs n >= k trials."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vals = []
    for s in successes_per_task:
        if len(s) < k:
            raise ValueError(f"{name} needs at least {k} trials per task, a task has {len(s)}")
        vals.append(value(len(s), sum(s)))
    return sum(vals) / len(vals) if vals else 0.0


def pass_hat_k(successes_per_task: list[list[bool]], k: int) -> float:
    """Mean over tasks of C(c, k) / C(n, k) (τ-bench's pass^k); every task needs n >= k trials."""
    return _mean_over_tasks(successes_per_task, k, f"pass^{k}", lambda n, c: comb(c, k) / comb(n, k))


def pass_at_k(successes_per_task: list[list[bool]], k: int) -> float:
    """Mean over tasks of 1 − C(n − c, k) / C(n, k) (Chen et al. 2021, eq. 1); every task needs n >= k trials.
    comb(m, k) = 0 when m < k: some success is then certain."""
    return _mean_over_tasks(successes_per_task, k, f"pass@{k}", lambda n, c: 1.0 - comb(n - c, k) / comb(n, k))


def avg_at_k(successes_per_task: list[list[bool]]) -> float:
    """Mean over tasks of c / n: the expected success rate of k tries, for any k <= n."""
    vals = [sum(s) / len(s) for s in successes_per_task if s]
    return sum(vals) / len(vals) if vals else 0.0


def task_list(env: ResolvedEnv, n_tasks: int | str | None, seed: int) -> list[tuple[int, str | None]]:
    """(seed, task id) pairs to evaluate: the env's task list (read when it was resolved; the first n_tasks, None:
    all, or the ids of the file n_tasks names, `task_files.py`), or n_tasks seeds from `seed` (None: 10)."""
    ids = env.task_ids
    if isinstance(n_tasks, str):
        chosen = read_task_ids(n_tasks)
        check_task_ids(chosen, ids or [], n_tasks)
        return [(seed, t) for t in chosen]
    if ids:
        chosen = ids if n_tasks is None else ids[:n_tasks]
        return [(seed, t) for t in chosen]
    return [(seed + i, None) for i in range(n_tasks or 10)]


@dataclass
class ScriptedEpisode:
    """One episode of a text agent (a scripted agent, or any `act(conversation) -> str`), at the text level."""

    opening: list[dict[str, str]]  # the reset observation (system + user)
    info: dict[str, Any]  # the reset info (tools for the formatter)
    turns: list[tuple[str, list[dict[str, str]]]]  # (agent text, env messages after it)
    reward: float
    success: bool  # info["success"] of the last step; reward >= 1 when the env does not say
    final_info: dict[str, Any] = field(default_factory=dict)  # the last step's info (reward breakdown, errors)
    terminated: bool = False
    truncated: bool = False

    @property
    def messages(self) -> list[dict[str, str]]:
        """The whole conversation: the opening, then each agent turn and the env messages after it."""
        out = list(self.opening)
        for action, msgs in self.turns:
            out += [{"role": "assistant", "content": action}, *msgs]
        return out


def play_scripted(env: Any, make_agent: ScriptedFactory, *, seed: int | None, task: str | None) -> ScriptedEpisode:
    """Reset the env (seed, task) and let the agent `make_agent(env)` (a factory from `scripted_agents(env_id)`,
    or any callable returning `act(conversation) -> str`, built after the reset) play the episode to the end.
    seed=None resets without reseeding the env."""
    obs, info = env.reset(seed=seed, options={"task_id": task} if task else {})
    agent = make_agent(env)
    opening = [dict(m) for m in obs]
    convo, turns = list(opening), []
    done, reward, step_info, term, trunc = False, 0.0, {}, False, False
    while not done:
        action = agent(convo)
        obs, reward, term, trunc, step_info = env.step(action)
        msgs = [dict(m) for m in obs]
        turns.append((action, msgs))
        convo += [{"role": "assistant", "content": action}] + msgs
        done = term or trunc
    ok = step_info.get("success")
    return ScriptedEpisode(
        opening,
        info,
        turns,
        float(reward),
        bool(ok) if ok is not None else reward >= 1.0,
        step_info,
        bool(term),
        bool(trunc),
    )


OnEpisode = Callable[[Any, ScriptedEpisode], None]  # (the bare env, still at the episode's end; the episode)


def run_text_agent(
    env_: ResolvedEnv,
    make_agent: ScriptedFactory,
    tasks: list[tuple[int, str | None]],
    trials: int,
    on_episode: OnEpisode | None = None,
) -> list[TaskOutcome]:
    """Every (seed, task) `trials` times with a text agent (`play_scripted`), one env for all of them.
    on_episode: called after each episode, while the env still holds its end state (`consult run` writes its
    dialog records from it)."""
    env = env_.make().unwrapped
    outcomes = []
    for seed, task in tasks:
        oc = TaskOutcome(task or str(seed), [], [], [])
        for trial in range(trials):
            ep = play_scripted(env, make_agent, seed=seed + trial if task else seed, task=task)
            oc.rewards.append(ep.reward)
            oc.successes.append(ep.success)
            oc.turns.append(len(ep.turns))
            if on_episode is not None:
                on_episode(env, ep)
        outcomes.append(oc)
    return outcomes


def chat_agent(model: Any, *, temperature: float, max_tokens: int, seed: int) -> ScriptedFactory:
    """A chat model (`complete(messages, temperature=, max_tokens=, seed=)`: an endpoint's, a local one, a test's)
    as a text agent: each message is its completion of the conversation so far. The n-th episode (n = 0, 1, ...)
    samples with seed `seed + n`, so an episode's trials differ at temperature > 0 and a rerun repeats them."""
    episodes = itertools.count()

    def make(env: Any) -> Callable[[list[dict[str, str]]], str]:
        episode_seed = seed + next(episodes)

        def act(conversation: list[dict[str, str]]) -> str:
            return model.complete(conversation, temperature=temperature, max_tokens=max_tokens, seed=episode_seed)

        return act

    return make


def is_endpoint(model: str) -> bool:
    """`MODEL@http(s)://HOST/v1`: a chat endpoint, evaluated as a text agent (it gives no token ids to run through
    the `RolloutRunner`)."""
    return "@http://" in model or "@https://" in model


def run_policy(
    env: ResolvedEnv,
    model: str,
    tasks: list[tuple[int, str | None]],
    trials: int,
    *,
    temperature: float,
    max_new_tokens: int,
    constrained: bool,
    seed: int,
    backend: str = "hf",
    device: str = "auto",
) -> list[TaskOutcome]:
    """env: the run's (`resolve_env`: its kwargs hold the simulator's model, if any). backend / device:
    `inference.sampling_policy`."""
    from agentrl.core.chat_format import ChatFormatter
    from agentrl.inference import sampling_policy
    from agentrl.inference.base import SamplingParams
    from agentrl.inference.models import load_model

    with usage_errors():  # a ValueError loading the model (or placing it) is about the names the user gave
        m, tok = load_model(model)
        max_len = int(getattr(m.config, "max_position_embeddings", 4096) or 4096)
        policy = sampling_policy(m, tok, backend=backend, device=device, max_seq_len=max_len)
    runner = build_runner(
        env,
        policy,
        ChatFormatter(tok),
        SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens),
        constrained=constrained,
        seed=seed,
        progress=True,
        max_seq_len=max_len,
    )
    try:
        return collect_outcomes(runner, tasks, trials)
    finally:
        policy.close()


def collect_outcomes(runner: Any, tasks: list[tuple[int, str | None]], trials: int) -> list[TaskOutcome]:
    """Run `trials` episodes of every (seed, task) with a ready `RolloutRunner`; one TaskOutcome per task. Trial t of
    a task is keyed ("eval", seed, task, t, n), n counting the task's earlier listings: its sampling seeds come from
    the task and trial, not from its place in `tasks` (a rank's share of the held-out tasks samples what one process
    does)."""
    from agentrl.rollout.runner import EpisodeSpec

    listed: dict[tuple[int, str | None], int] = {}
    repeat = []  # a task listed twice (a task file may) is its own episode: the n-th listing keys n
    for st in tasks:
        repeat.append(listed.get(st, 0))
        listed[st] = repeat[-1] + 1
    specs = [
        EpisodeSpec(seed=s + t if task else s, task_id=task, group_id=g, key=("eval", s, task, t, repeat[g]))
        for g, (s, task) in enumerate(tasks)
        for t in range(trials)
    ]
    eps = runner.collect(specs)
    outcomes = {g: TaskOutcome(task or str(s), [], [], []) for g, (s, task) in enumerate(tasks)}
    for ep in eps:
        oc = outcomes[ep.group_id]
        oc.rewards.append(ep.reward)
        oc.successes.append(bool(ep.success) if ep.success is not None else ep.reward >= 1.0)
        oc.turns.append(len(ep.turns))
        oc.failed += int(ep.end is not None and ep.end.infra)
    return [outcomes[g] for g in range(len(tasks))]


def summarize_outcomes(outcomes: list[TaskOutcome]) -> dict[str, float]:
    rewards = [r for o in outcomes for r in o.rewards]
    succ = [s for o in outcomes for s in o.successes]
    turns = [t for o in outcomes for t in o.turns]
    return {
        "success_rate": sum(succ) / len(succ),
        "mean_reward": sum(rewards) / len(rewards),
        "mean_turns": sum(turns) / len(turns),
    }


def _check_counts(tasks: int | None, k: int, trials: int | None) -> int:
    """Validate the counts (each >= 1, trials >= k); return trials (default k)."""
    for name, v in (("tasks", tasks), ("k", k), ("trials", trials)):
        if v is not None and v < 1:
            raise UsageError(f"{name} must be >= 1, got {v}")
    trials = trials or k
    if trials < k:
        raise UsageError(f"trials ({trials}) must be >= k ({k}): pass@k and pass^k need k trials per task")
    return trials


def evaluate(
    env_id: str,
    model: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    tasks: int | str | None = None,
    k: int = 1,
    trials: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    max_new_tokens: int = 256,
    constrained: bool = False,
    simulator: Any = None,
    backend: str = "hf",
    device: str = "auto",
    agent: ScriptedFactory | None = None,
    on_episode: OnEpisode | None = None,
) -> EvalResult:
    """model: a token policy (a model name, HF dir or run dir: run through the `RolloutRunner`, as in training),
    `scripted:NAME` (the env's rule-based agent) or `MODEL@http(s)://HOST/v1` (a chat endpoint); the last two play
    at the text level (`play_scripted`). tasks: how many of the env's tasks (None: all), or a file naming them
    (`task_files.py`). simulator: the chat model setting for the env's simulated user / patient (a
    `SimulatorConfig` or any object with its fields), loaded once and given to every env as `simulator`, as
    training's `env.simulator` is. agent: a text agent to play instead (`chat_agent` of a model made elsewhere);
    `model` then only names it. on_episode: see `run_text_agent` (text agents only)."""
    env_kwargs = dict(env_kwargs or {})
    trials = _check_counts(None if isinstance(tasks, str) else tasks, k, trials)
    if agent is None and model.startswith("scripted:"):  # an unknown name fails here, listing the env's agents
        agent = scripted_factory(env_id, model.split(":", 1)[1])
    if agent is None and on_episode is not None and not is_endpoint(model):
        raise UsageError(f"on_episode is for text agents (scripted:NAME, MODEL@http://HOST/v1), not {model!r}")
    # the env, once: id, kwargs and values checked (one probe, which also gives the task list and, without a
    # simulator, runs the first episodes), the simulator's model loaded: all before the policy loads
    env = resolve_env(env_id, env_kwargs, simulator)
    tasks_ = task_list(env, tasks, seed)
    if agent is None and is_endpoint(model):
        from agentrl.sim.models import make_chat_model

        agent = chat_agent(make_chat_model(model), temperature=temperature, max_tokens=max_new_tokens, seed=seed)
    if agent is not None:
        outcomes = run_text_agent(env, agent, tasks_, trials, on_episode)
    else:
        outcomes = run_policy(
            env,
            model,
            tasks_,
            trials,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            constrained=constrained,
            seed=seed,
            backend=backend,
            device=device,
        )
    s = summarize_outcomes(outcomes)
    return EvalResult(
        env=env_id,
        model=model,
        tasks=len(outcomes),
        trials=trials,
        k=k,
        success_rate=s["success_rate"],
        mean_reward=s["mean_reward"],
        pass_k={j: pass_hat_k([o.successes for o in outcomes], j) for j in range(1, k + 1)},
        pass_at_k={j: pass_at_k([o.successes for o in outcomes], j) for j in range(1, k + 1)},
        avg_at_k=avg_at_k([o.successes for o in outcomes]),
        mean_turns=s["mean_turns"],
        failed=sum(o.failed for o in outcomes),
        simulator=getattr(simulator, "model", None),
        outcomes=outcomes,
    )
