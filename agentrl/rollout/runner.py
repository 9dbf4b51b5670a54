"""Run many episodes of an env at once against a policy backend, token-exact; branch from snapshots.

Each round, every active episode's next agent turn is generated in ONE batched `generate` call; each
env then steps on the decoded text, and its reply is appended as chat-template token deltas
(`ChatFormatter.delta_ids`), never by re-tokenizing history. `branch()` restores the env snapshot
taken at the start of the turn holding a token position and runs continuations to the end — the
Monte-Carlo value estimates of TRePO (DESIGN.md, "TRePO", step 2).

Seeds are data: every sampled episode and continuation carries a key saying what it is (the trainer's
("train", step, group, index); a continuation's ("branch", parent uid, position, j)), and its turns' sampling
seeds and its uid are hashes of that key. The runner keeps no counter, so what an episode samples never depends
on what was collected before it, in which call, or on which rank (DESIGN.md, "Seeds are data").

Every episode comes back with `Episode.end` set (`core/outcomes.py`). An exception from one env — resetting,
stepping, or scoring it — ends only that episode (env_error, or simulator_error when a chat model raised it),
with the error as one scrubbed line in `Episode.error` and reward 0; the other episodes go on. A completion the
policy backend could not produce (finish_reason "error": the remote backend's servers all failed for that request)
ends only its episode too, as sampler_error, with the backend's error text. Exceptions from the runner's own work
(the policy's generate, the chat template) still propagate.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agentrl.core.chat import BaseChatModel
from agentrl.core.chat_format import ChatFormatter
from agentrl.core.env import MultiTurnEnv, Outcome
from agentrl.core.outcomes import EpisodeEnd, SimulatorError, error_text, scrubbed_line
from agentrl.core.types import Episode, Message, Turn
from agentrl.inference.base import Completion, PolicyBackend, SamplingParams, allowed_steps
from agentrl.inference.http import HTTPBackendError
from agentrl.rollout.anchors import env_anchor_key
from agentrl.sim.batching import SimulatorQueue

log = logging.getLogger(__name__)


SeedKey = tuple[Any, ...]  # what a sampled thing is: ints and strings (its repr is hashed, so keep it plain)


@dataclass
class EpisodeSpec:
    """One episode to run: env seed, task, and the group it belongs to (G episodes of one task share a group).

    key: what the episode is, e.g. the trainer's ("train", step, group, index in group): its turns' sampling seeds
    and its uid derive from it (with the runner's seed), so the same key samples the same tokens in any batch, call
    or process. Keys must differ within one `collect` call. None: ("spec", seed, task_id, group_id, n), n counting
    the earlier keyless specs of the call with the same three; a second call with the same specs samples the same.
    """

    seed: int
    task_id: str | None = None
    group_id: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingParams | None = None  # overrides the runner's default
    key: SeedKey | None = None


def _derive_seed(*parts: Any) -> int:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


def key_uid(key: SeedKey) -> int:
    """The uid of the episode sampled as `key`: a 63-bit hash, so unique in practice (a 31-bit one would collide
    within a long run) and the same on every rank and after a resume (records, branch points and the random-reward
    control's draws key by it)."""
    h = hashlib.blake2b(repr(("uid", key)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFFFFFFFFFF


def spec_keys(specs: list[EpisodeSpec]) -> list[SeedKey]:
    """Each spec's key (`EpisodeSpec.key`, or the default for a keyless one); ValueError if two are equal (two
    episodes would sample the same tokens under one uid)."""
    seen: dict[tuple[Any, ...], int] = {}
    keys: list[SeedKey] = []
    for s in specs:
        if s.key is not None:
            keys.append(tuple(s.key))
            continue
        what = (s.seed, s.task_id, s.group_id)
        seen[what] = seen.get(what, -1) + 1
        keys.append(("spec", *what, seen[what]))
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"two episode specs of one collect() have the key {dup!r}: keys say what an episode is")
    return keys


def _raised_in_chat_model(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if isinstance(tb.tb_frame.f_locals.get("self"), BaseChatModel):
            return True
        tb = tb.tb_next
    return False


def failure_kind(exc: BaseException) -> EpisodeEnd:
    """simulator_error for a `SimulatorError`, an `HTTPBackendError`, or an exception raised inside a chat model's
    method (also as the cause or context of the one caught); env_error otherwise."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (SimulatorError, HTTPBackendError)) or _raised_in_chat_model(e):
            return EpisodeEnd.SIMULATOR_ERROR
        e = e.__cause__ or e.__context__
    return EpisodeEnd.ENV_ERROR


@dataclass
class _Live:
    env: MultiTurnEnv
    ep: Episode
    ids: list[int]  # full token sequence so far (the next prompt)
    sampling: SamplingParams
    partial: list[int] = field(default_factory=list)  # sampled ids of the current turn before a mid-turn branch point
    partial_lp: list[float] = field(default_factory=list)
    partial_allowed: list[list[int]] = field(default_factory=list)
    seed_key: Any = None  # what a turn's sampling seed derives from (the episode's key; with CRN, shared by points)
    deadline: float | None = None  # time.monotonic() past which the episode ends as timed_out


class RolloutRunner:
    """Collects episodes from `make_env()` envs with a policy backend.

    constrained: restrict sampling to `env.allowed_replies()` when the env declares them (tiny-model tests).
    snapshot_turns: keep an env snapshot at the start of every agent turn (needed to branch; TRePO sets it).
    anchor_turns: set every turn's `Turn.anchor`, the hash of the env's snapshot and the messages before it
        (`rollout/anchors.py`; GiGPO's anchor states, set by its spec's `needs_anchor_states`).
    env_workers: step the envs of a round on this many threads, so simulators that share a model behind a
        `BatchingChatModel` answer in one batched call per round (1 = step one env after another); the
        batched calls of `simulator_queue`'s models run on the thread that called the runner
        (`SimulatorQueue.map_serving`).
    simulator_queue: the run's `SimulatorQueue`, the one its envs' batching simulators were given; None: a
        queue of the runner's own (its envs' batching models, on other queues, then answer on env threads).
    episode_timeout_s: wall-clock limit per episode (from its start in `collect`/`branch_many`); an episode past
        it ends as timed_out after the env step that crossed it (a step in progress is not interrupted).
    """

    def __init__(
        self,
        make_env: Callable[[], Any],  # a MultiTurnEnv, possibly inside Gymnasium wrappers (gymnasium.make's)
        policy: PolicyBackend,
        formatter: ChatFormatter,
        sampling: SamplingParams,
        *,
        constrained: bool = False,
        snapshot_turns: bool = False,
        anchor_turns: bool = False,
        max_seq_len: int = 4096,
        seed: int = 0,
        progress: bool = False,
        env_workers: int = 1,
        simulator_queue: SimulatorQueue | None = None,
        episode_timeout_s: float | None = None,
    ):
        if env_workers < 1:
            raise ValueError(f"env_workers must be >= 1, got {env_workers}")
        if episode_timeout_s is not None and episode_timeout_s <= 0:
            raise ValueError(f"episode_timeout_s must be > 0 (or None: no limit), got {episode_timeout_s}")
        self.episode_timeout_s = episode_timeout_s
        self.env_workers = env_workers
        self._threads: Any = None
        self.simulator_queue = simulator_queue if simulator_queue is not None else SimulatorQueue()
        self.make_env = make_env
        self.policy = policy
        self.fmt = formatter
        self.sampling = sampling
        self.constrained = constrained
        self.snapshot_turns = snapshot_turns
        self.anchor_turns = anchor_turns
        self.max_seq_len = max_seq_len
        self.seed = seed
        self.progress = progress
        self._pool: list[Any] = []
        self._allowed_cache: dict[tuple[str, ...], list[list[int]]] = {}
        eos = getattr(formatter.tok, "eos_token_id", None)
        self._eos = eos if isinstance(eos, int) else 0

    # -- public ----------------------------------------------------------------------------------
    def collect(self, specs: list[EpisodeSpec]) -> list[Episode]:
        """Run one episode per spec; episodes whose env failed to reset come first (no tokens, end set)."""
        lives, failed = [], []
        for spec, key in zip(specs, spec_keys(specs)):
            env = self._acquire()
            opts = dict(spec.options)
            if spec.task_id is not None:
                opts["task_id"] = spec.task_id
            try:
                env.reset(seed=spec.seed, options=opts)
                opening = env.prompt()
            except Exception as exc:  # one env's failure ends its episode, not the rollout
                ep = Episode(
                    prompt_ids=[],
                    task_id=str(spec.task_id or ""),
                    group_id=spec.group_id,
                    seed=spec.seed,
                    uid=key_uid(key),
                )
                self._fail(ep, exc)
                failed.append(ep)
                continue
            prompt = self.fmt.prompt_ids(opening)
            if len(prompt) >= self.max_seq_len:
                self._release(env)
                raise ValueError(
                    f"the opening prompt (seed {spec.seed}, task {env.task_id!r}) has {len(prompt)} tokens; "
                    f"max_seq_len is {self.max_seq_len}: raise it or shorten the env's prompt"
                )
            ep = Episode(
                prompt_ids=prompt,
                task_id=str(env.task_id or spec.task_id or ""),
                group_id=spec.group_id,
                seed=spec.seed,
                uid=key_uid(key),
                messages=opening.messages(),
            )
            sampling = spec.sampling or self.sampling
            lives.append(_Live(env, ep, list(prompt), sampling, seed_key=key, deadline=self._deadline()))
        return failed + self._run(lives)

    def branch(self, episode: Episode, pos: int, temperatures: list[float]) -> list[Episode]:
        """Continue `episode` from token position `pos` (an agent token) once per temperature."""
        return self.branch_many([(episode, pos, temperatures)])

    def branch_many(
        self, requests: list[tuple[Episode, int, list[float]]], *, common_random_numbers: bool = False
    ) -> list[Episode]:
        """Many branch requests in one batched run (all continuations of all points generate together).

        Continuation j from position `pos` of `episode` is ("branch", episode.uid, pos, j): its uid and seeds derive
        from that key, so they are the same whatever else the call holds (the trainer's ranks each branch their own
        episodes and sample what one process would).

        common_random_numbers: continuation j of every branch point of an episode samples turn k with the
        same seed (it derives from the parent episode, j and k, not from the point). Each V̂ stays an
        unbiased Monte-Carlo mean; but V̂(t_b) − V̂(t_a) — TRePO's advantage — then sees the same luck in
        the turns after t_b from both sides, and that noise largely cancels (the classic variance reduction
        for a difference of two estimates, e.g. Glasserman 2003, §4.2).
        """
        lives = []
        for episode, pos, temps in requests:
            k, turn = self._turn_at(episode, pos)
            if k not in episode.snapshots:
                raise ValueError(
                    f"episode {episode.uid} has no snapshot for turn {k}; collect with snapshot_turns=True"
                )
            cut = pos - turn.start
            for j, temp in enumerate(temps):
                env = self._acquire()
                env.restore(episode.snapshots[k])
                ep = Episode(
                    prompt_ids=list(episode.prompt_ids),
                    turns=[copy.copy(t) for t in episode.turns[:k]],
                    task_id=episode.task_id,
                    group_id=episode.group_id,
                    seed=episode.seed,
                    uid=key_uid(("branch", episode.uid, pos, j)),
                    messages=self._messages_before_turn(episode, k),
                    parent_uid=episode.uid,
                    branch_pos=pos,
                )
                ep.snapshots = (
                    {}
                    if not self.snapshot_turns
                    else {i: episode.snapshots[i] for i in range(k + 1) if i in episode.snapshots}
                )
                key = ("branch", episode.uid, j) if common_random_numbers else ("branch", episode.uid, pos, j)
                base = replace(self.sampling, temperature=temp, seed=_derive_seed(self.seed, *key))
                ids = episode.input_ids[:pos]
                lives.append(
                    _Live(
                        env,
                        ep,
                        ids,
                        base,
                        partial=list(turn.sampled_ids[:cut]),
                        partial_lp=list(turn.logprobs[:cut]),
                        partial_allowed=list(turn.allowed[:cut]) if turn.allowed else [],
                        seed_key=key,
                        deadline=self._deadline(),
                    )
                )
        return self._run(lives, fresh_turn_snapshot=False)

    # -- the loop -----------------------------------------------------------------------------------
    def _run(self, lives: list[_Live], fresh_turn_snapshot: bool = True) -> list[Episode]:
        done: list[Episode] = []
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(lives), desc="episodes", leave=False)
        active = list(lives)
        first_round = True
        while active:
            params = []
            for lv in active:
                k = len(lv.ep.turns)
                if self.snapshot_turns and (fresh_turn_snapshot or not first_round) and k not in lv.ep.snapshots:
                    lv.ep.snapshots[k] = lv.env.snapshot()
                p = replace(lv.sampling, seed=_derive_seed(self.seed, lv.seed_key, k, lv.sampling.seed))
                if self.constrained:
                    p = replace(p, allowed=self._allowed(lv))
                budget = self.max_seq_len - len(lv.ids)
                p = replace(p, max_new_tokens=max(1, min(p.max_new_tokens, budget)))
                params.append(p)
            first_round = False
            comps = self.policy.generate([lv.ids for lv in active], params)
            ended = self._step_all(active, comps, params)
            still = []
            for lv, over in zip(active, ended):
                if over:
                    done.append(lv.ep)
                    if lv.ep.end not in (EpisodeEnd.ENV_ERROR, EpisodeEnd.SIMULATOR_ERROR):
                        self._release(lv.env)
                    if bar is not None:
                        bar.update(1)
                else:
                    still.append(lv)
            active = still
        if bar is not None:
            bar.close()
        return done

    def _step_all(self, active: list[_Live], comps: list[Any], params: list[SamplingParams]) -> list[bool]:
        """Step every active env with its generated turn (on threads when env_workers > 1)."""
        jobs = [(lv, c, p) for lv, c, p in zip(active, comps, params)]
        if self.env_workers == 1 or len(jobs) == 1:
            return [self._advance(*j) for j in jobs]
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(self.env_workers, thread_name_prefix="agentrl-env")
        # the envs' batched simulator calls run here, on the thread that owns torch's compute threads
        return self.simulator_queue.map_serving(self._threads, lambda j: self._advance(*j), jobs)

    def _advance(self, lv: _Live, comp: Completion, p: SamplingParams) -> bool:
        """Step the env with one generated turn; return True when the episode is over."""
        if comp.finish_reason == "error":  # the sampler gave up on this request: no turn to step the env with
            self._fail(lv.ep, None, EpisodeEnd.SAMPLER_ERROR, error=comp.error or "the policy backend gave no reason")
            return True
        new_ids, new_lp, finish = comp.token_ids, comp.logprobs, comp.finish_reason
        sampled = lv.partial + list(new_ids)
        lps = lv.partial_lp + list(new_lp)
        allowed = None if p.allowed is None else lv.partial_allowed + allowed_steps(p.allowed, list(new_ids))
        start = len(lv.ids) - len(lv.partial)
        lv.partial, lv.partial_lp, lv.partial_allowed = [], [], []
        text = self.fmt.tok.decode(sampled, skip_special_tokens=True)
        turn = Turn(sampled, lps, text, finish, start, temperature=p.temperature, allowed=allowed)
        ep = lv.ep
        ep.turns.append(turn)
        ep.messages.append(Message("assistant", text))
        try:
            if self.anchor_turns:  # before the step: the env's state and the messages before this turn
                turn.anchor = env_anchor_key(lv.env, ep.messages[:-1], ep.snapshots.get(len(ep.turns) - 1))
            obs, _, terminated, truncated, _ = lv.env.step(text)  # info is for logs: the outcome says how it ended
        except Exception as exc:  # the env (or its simulator) failed: this episode ends, the others go on
            self._fail(ep, exc)
            return True
        turn.env_messages = [Message.from_dict(m) for m in obs]
        ep.messages.extend(turn.env_messages)
        if terminated or truncated:
            self._finish(ep, lv.env.outcome())
            return True
        if lv.deadline is not None and time.monotonic() > lv.deadline:
            self._fail(ep, None, EpisodeEnd.TIMED_OUT)
            return True
        turn.env_ids = self.fmt.delta_ids([m.to_dict() for m in turn.env_messages], sampled)
        lv.ids = lv.ids[:start] + sampled + turn.env_ids
        if len(lv.ids) >= self.max_seq_len - 1:
            # Out of context: end here and score what the env has (counted, never silent). The env's reply is
            # not appended: like any last turn, the sequence ends with sampled ids, within max_seq_len.
            turn.env_ids = []
            lv.ids = lv.ids[: start + len(sampled)]
            try:
                outcome = lv.env.end_truncated()  # scores the episode: a judge may run here
            except Exception as exc:
                self._fail(ep, exc)
                return True
            self._finish(ep, outcome, context_overflow=True)
            return True
        return False

    def _finish(self, ep: Episode, outcome: Outcome | None, context_overflow: bool = False) -> None:
        if outcome is None:
            raise RuntimeError(
                "the env's step() ended the episode but its outcome() is None; MultiTurnEnv.step records it"
            )
        ep.reward = outcome.reward
        ep.reward_breakdown = dict(outcome.breakdown)
        ep.success = outcome.success
        for key, n in outcome.errors.items():
            ep.metrics[f"errors/{key}"] = float(n)
        if context_overflow:
            ep.metrics["context_overflow"] = 1.0
            ep.end = EpisodeEnd.TRUNCATED_CONTEXT
        else:
            ep.end = EpisodeEnd.TERMINATED if outcome.terminated else EpisodeEnd.TRUNCATED_TURNS
        self._count(ep)

    def _fail(
        self, ep: Episode, exc: Exception | None, end: EpisodeEnd | None = None, *, error: str | None = None
    ) -> None:
        """End an episode that could not finish: `exc` raised by its env (env_error / simulator_error), or `end`
        (timed_out; sampler_error with the backend's `error` text). Reward 0, no success; the env is dropped after
        an env or simulator error (its state is unknown); after timed_out or sampler_error it is reused (it was
        not mid-step)."""
        kind = end if exc is None else failure_kind(exc)
        assert kind is not None, "_fail takes an exception or an end"
        ep.end = kind
        ep.error = error_text(exc) if exc is not None else (None if error is None else scrubbed_line(error))
        ep.reward, ep.reward_breakdown, ep.success = 0.0, {}, None
        log.warning(
            "episode %s (task %r, seed %s) ended as %s%s",
            ep.uid,
            ep.task_id,
            ep.seed,
            kind.value,
            f": {ep.error}" if ep.error else "",
        )
        self._count(ep)

    @staticmethod
    def _count(ep: Episode) -> None:
        ep.metrics["turns"] = float(len(ep.turns))
        ep.metrics["sampled_tokens"] = float(ep.num_sampled)

    # -- helpers ---------------------------------------------------------------------------------------
    def _allowed(self, lv: _Live) -> list[list[int]] | None:
        replies = lv.env.allowed_replies()
        if replies is None:
            return None
        key = tuple(replies)
        if key not in self._allowed_cache:
            self._allowed_cache[key] = [self.fmt.encode(r) + [self._eos] for r in replies]
        seqs = self._allowed_cache[key]
        n = len(lv.partial)
        if n:  # mid-turn branch: keep the replies that extend what was already sampled
            seqs = [s[n:] for s in seqs if s[:n] == lv.partial and len(s) > n]
        return seqs or None

    @staticmethod
    def _turn_at(episode: Episode, pos: int) -> tuple[int, Turn]:
        for k, t in enumerate(episode.turns):
            if t.start <= pos < t.start + len(t.sampled_ids):
                return k, t
        raise ValueError(
            f"position {pos} is not an agent token of episode {episode.uid} (turn starts: {episode.turn_starts})"
        )

    @staticmethod
    def _messages_before_turn(episode: Episode, k: int) -> list[Message]:
        # messages = opening observation, then per turn: assistant message + env messages
        n_open = len(episode.messages) - sum(1 + len(t.env_messages) for t in episode.turns)
        return list(episode.messages[: n_open + sum(1 + len(t.env_messages) for t in episode.turns[:k])])

    def _acquire(self) -> MultiTurnEnv:
        # the bare env: Gymnasium's order-enforcing wrapper would refuse step() on an env put in place by restore()
        if self._pool:
            return self._pool.pop()
        env = self.make_env().unwrapped
        if not isinstance(env, MultiTurnEnv):
            raise TypeError(
                f"RolloutRunner runs agentrl.core.env.MultiTurnEnv envs; make_env() gave {type(env).__name__}"
            )
        return env

    def _deadline(self) -> float | None:
        return None if self.episode_timeout_s is None else time.monotonic() + self.episode_timeout_s

    def _release(self, env: MultiTurnEnv) -> None:
        self._pool.append(env)
