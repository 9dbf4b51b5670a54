"""Rollouts are token-exact (DESIGN.md, "Token-in, token-out"): the training sequence is exactly what the
policy was conditioned on and sampled, env deltas are what the chat template renders, logprobs re-score,
batching does not change greedy output, seeds reproduce, and branches share the exact prefix."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import gymnasium as gym
import pytest
import torch

from agentrl.core.chat_format import ChatFormatter
from agentrl.core.outcomes import EpisodeEnd
from agentrl.core.registry import load_env_plugins
from agentrl.core.types import Episode, allowed_tensor, collate
from agentrl.inference.base import SamplingParams
from agentrl.inference.hf import HFPolicy
from agentrl.rollout.runner import EpisodeSpec, RolloutRunner
from agentrl.train.forward import forward

load_env_plugins()


class RecordingPolicy(HFPolicy):
    """HFPolicy that records every (prompt ids -> sampled ids) pair it served."""

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.served: dict[tuple[int, ...], list[list[int]]] = defaultdict(list)
        self.calls = 0

    def generate(self, prompts, params):
        self.calls += 1
        out = super().generate(prompts, params)
        for p, c in zip(prompts, out):
            self.served[tuple(p)].append(list(c.token_ids))
        return out


def credit(turns: int = 3):
    return lambda: gym.make("agentrl/CreditChain-v0", turns=turns)


def notes_constrained_env(notes_env_cls):
    """The conftest Notes env, with allowed replies that include tool calls (so tool messages reach the deltas)."""

    def call(name: str, **args: Any) -> str:
        return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"

    class NotesConstrained(notes_env_cls):
        def allowed_replies(self):
            return [call("put", key="a", value="x"), call("get", key="a"), call("add", numbers=[1, 2]), "hello", "DONE"]

    return NotesConstrained


def runner(
    tiny,
    make_env,
    *,
    temperature: float = 1.0,
    max_new: int = 8,
    constrained: bool = False,
    seed: int = 0,
    snapshot_turns: bool = False,
    max_batch_size: int = 64,
) -> RolloutRunner:
    model, tok = tiny
    return RolloutRunner(
        make_env,
        RecordingPolicy(model, tok, max_batch_size=max_batch_size),
        ChatFormatter(tok),
        SamplingParams(temperature=temperature, max_new_tokens=max_new),
        constrained=constrained,
        seed=seed,
        snapshot_turns=snapshot_turns,
    )


def specs(n: int, seed0: int = 0) -> list[EpisodeSpec]:
    return [EpisodeSpec(seed=seed0 + i, group_id=i) for i in range(n)]


# ------------------------------------------------------------------ the checks


def check_structure(ep: Episode) -> None:
    ids = list(ep.prompt_ids)
    mask = [0] * len(ids)
    for t in ep.turns:
        assert t.start == len(ids), "a turn must start right after the tokens before it"
        assert len(t.logprobs) == len(t.sampled_ids) > 0
        ids += t.sampled_ids + t.env_ids
        mask += [1] * len(t.sampled_ids) + [0] * len(t.env_ids)
    assert ep.input_ids == ids
    assert ep.action_mask == mask
    assert sum(ep.action_mask) == ep.num_sampled
    assert ep.turns[-1].env_ids == [], "nothing is appended after the last turn"
    assert all(t.env_ids for t in ep.turns[:-1]), "every turn but the last is followed by env tokens"
    assert ep.terminated or ep.truncated


def check_conditioned_on(ep: Episode, policy: RecordingPolicy) -> None:
    """Each turn's sampled ids are what the policy returned for exactly the tokens before them."""
    ids = ep.input_ids
    for k, t in enumerate(ep.turns):
        end = t.start + len(t.sampled_ids)
        hits = [s for s in range(t.start, end) if ids[s:end] in policy.served.get(tuple(ids[:s]), [])]
        assert hits, f"turn {k}: the policy was never asked for these ids from this exact prefix"


def check_template_deltas(ep: Episode, tok: Any) -> None:
    """Each turn's sampled + env ids decode to the assistant text followed by what the chat template renders
    for the env's messages (closing tokens, messages, next assistant header)."""
    msgs = [m.to_dict() for m in ep.messages]
    n_open = len(msgs) - sum(1 + len(t.env_messages) for t in ep.turns)
    i = n_open
    for t in ep.turns[:-1]:
        before = msgs[:i]
        assistant = msgs[i]
        env_msgs = msgs[i + 1 : i + 1 + len(t.env_messages)]
        assert assistant == {"role": "assistant", "content": t.text}
        assert env_msgs == [m.to_dict() for m in t.env_messages]
        head = tok.apply_chat_template(before, tokenize=False, add_generation_prompt=True) + t.text
        full = tok.apply_chat_template(before + [assistant] + env_msgs, tokenize=False, add_generation_prompt=True)
        assert full.startswith(head)
        got = tok.decode(t.sampled_ids + t.env_ids, skip_special_tokens=False)
        assert got == t.text + full[len(head) :] or (
            got.replace("\ufffd", "") == (t.text + full[len(head) :]).replace("\ufffd", "")  # split UTF-8 at the seam
        ), (got, t.text + full[len(head) :])
        i += 1 + len(t.env_messages)


def check_whole_template(ep: Episode, tok: Any) -> None:
    """When every turn ended with EOS, the whole sequence IS the template's tokenization of the transcript."""
    assert all(t.sampled_ids[-1] == tok.eos_token_id for t in ep.turns)
    msgs = [m.to_dict() for m in ep.messages]
    if ep.turns[-1].env_messages:  # the last turn's env messages are never appended
        msgs = msgs[: -len(ep.turns[-1].env_messages)]
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    want = tok(rendered, add_special_tokens=False)["input_ids"]
    got = ep.input_ids
    # the template closes the last assistant message with EOS + newline; the policy stopped at its EOS
    assert want[: len(got)] == got
    assert tok.decode(want[len(got) :]) == "\n"


def check_rescoring(episodes: list[Episode], model: Any, pad_id: int) -> None:
    """Re-scoring the collated sequences reproduces the rollout logprobs on sampled tokens (float32, 1e-4)."""
    temps = sorted({t.temperature or 1.0 for e in episodes for t in e.turns})
    ids, attn, amask, oldlp = collate(episodes, pad_id)
    allowed = allowed_tensor(episodes, ids.shape[1])  # constrained turns record the renormalised logprob
    with torch.no_grad():
        per_temp = {T: forward(model, None, ids, attn, T, entropy=False, allowed=allowed).logprobs for T in temps}
    for b, e in enumerate(episodes):
        for t in e.turns:
            # rollout logprobs are at the sampling temperature (1.0 for greedy)
            new = per_temp[t.temperature or 1.0][b, t.start : t.start + len(t.sampled_ids)]
            assert torch.allclose(new, torch.tensor(t.logprobs), atol=1e-4), (new, t.logprobs)
    assert torch.equal(amask.sum(), torch.tensor(float(sum(e.num_sampled for e in episodes))))


def check_all(episodes: list[Episode], tiny, policy: RecordingPolicy, *, whole_template: bool = False) -> None:
    model, tok = tiny
    for ep in episodes:
        check_structure(ep)
        check_conditioned_on(ep, policy)
        check_template_deltas(ep, tok)
        if whole_template:
            check_whole_template(ep, tok)
    check_rescoring(episodes, model, policy.pad_id)


# ------------------------------------------------------------------ token exactness


def test_creditchain_constrained_token_exact(tiny) -> None:
    r = runner(tiny, credit(3), constrained=True, temperature=1.0)
    eps = r.collect(specs(6))
    assert len(eps) == 6 and {e.seed for e in eps} == set(range(6))
    for e in eps:
        assert len(e.turns) == 3 and e.terminated and set(e.reward_breakdown) == {"right_turns", "turns"}
        assert all(t.text in ("1", "2", "3", "4") and t.finish_reason == "stop" for t in e.turns)
        assert e.reward == e.reward_breakdown["right_turns"] / 3
    assert r.policy.calls == 3, "all episodes' turns generate together: one batched call per round"
    check_all(eps, tiny, r.policy, whole_template=True)


def test_creditchain_unconstrained_token_exact(tiny) -> None:
    r = runner(tiny, credit(3), constrained=False, temperature=1.0, max_new=6)
    eps = r.collect(specs(4))
    for e in eps:
        assert len(e.turns) == 3 and all(1 <= len(t.sampled_ids) <= 6 for t in e.turns)
    check_all(eps, tiny, r.policy)


def test_tools_env_constrained_token_exact(tiny, notes_env_cls) -> None:
    r = runner(tiny, notes_constrained_env(notes_env_cls), constrained=True, temperature=1.0, max_new=64)
    eps = r.collect(specs(6))
    roles = {m.role for e in eps for t in e.turns for m in t.env_messages}
    assert "tool" in roles, "the allowed replies include tool calls; some must have been sampled"
    assert (
        eps[0].prompt_ids
        == tiny[1](
            tiny[1].apply_chat_template(  # no control strings in this env's text
                [m.to_dict() for m in eps[0].messages[:2]], tokenize=False, add_generation_prompt=True
            ),
            add_special_tokens=False,
        )["input_ids"]
    )
    assert "<tool_call>" in tiny[1].decode(eps[0].prompt_ids), "the system prompt carries the tool block"
    check_all(eps, tiny, r.policy, whole_template=True)


def test_tools_env_unconstrained_token_exact(tiny, notes_env_cls) -> None:
    r = runner(tiny, notes_env_cls, temperature=1.0, max_new=10)
    eps = r.collect(specs(3))
    assert all(
        e.truncated and len(e.turns) == notes_env_cls.max_turns and e.end is EpisodeEnd.TRUNCATED_TURNS for e in eps
    )
    check_all(eps, tiny, r.policy)


def test_length_cut_turn_gets_closing_tokens(tiny) -> None:
    r = runner(tiny, credit(2), temperature=1.0, max_new=1)  # one token per turn: never EOS
    ep = r.collect(specs(1, seed0=3))[0]
    t = ep.turns[0]
    assert t.finish_reason == "length" and len(t.sampled_ids) == 1
    assert t.env_ids[: len(r.fmt.close_ids)] == r.fmt.close_ids  # <|im_end|>\n, which the policy did not sample


def test_metrics_and_messages(tiny) -> None:
    r = runner(tiny, credit(2), constrained=True)
    ep = r.collect(specs(1))[0]
    assert ep.metrics["turns"] == 2.0 and ep.metrics["sampled_tokens"] == float(ep.num_sampled)
    assert [m.role for m in ep.messages] == ["system", "user", "assistant", "user", "assistant"]


def test_error_counts_become_episode_metrics(tiny, notes_env_cls) -> None:
    class CallsUnknownTools(notes_env_cls):
        max_turns = 2

        def allowed_replies(self):
            return ['<tool_call>{"name": "nope", "arguments": {}}</tool_call>']

    (ep,) = runner(tiny, CallsUnknownTools, constrained=True, max_new=32).collect(specs(1))
    assert ep.truncated and ep.metrics["errors/unknown_tool"] == 2.0 and ep.metrics["turns"] == 2.0


def test_context_overflow_ends_within_max_seq_len(tiny) -> None:
    r = runner(tiny, credit(6), max_new=8)
    prompt_len = len(r.collect(specs(1))[0].prompt_ids)
    for extra in (5, 20, 40):
        r = runner(tiny, credit(6), max_new=8)
        r.max_seq_len = prompt_len + extra
        (ep,) = r.collect(specs(1))
        assert ep.metrics["context_overflow"] == 1.0 and ep.truncated and not ep.terminated
        assert ep.end is EpisodeEnd.TRUNCATED_CONTEXT and ep.error is None
        assert len(ep.input_ids) <= r.max_seq_len, "the training sequence must fit the context"
        assert set(ep.reward_breakdown) == {"right_turns", "turns"}
        (env,) = r._pool  # ended through end_truncated(): the env did a truncating step's bookkeeping
        assert env.done and env.outcome().truncated and env.outcome().reward == ep.reward
        check_structure(ep)
        check_conditioned_on(ep, r.policy)
    r = runner(tiny, credit(6))
    r.max_seq_len = prompt_len
    with pytest.raises(ValueError, match=f"has {prompt_len} tokens; max_seq_len is {prompt_len}"):
        r.collect(specs(1))


# ------------------------------------------------------------------ batching and seeds


def test_batched_equals_one_at_a_time_greedy_backend(tiny) -> None:
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompts = [
        tok("Hello there, how are you?")["input_ids"],
        tok("x")["input_ids"],
        tok("A longer prompt " * 5)["input_ids"],
    ]
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    together = policy.generate(prompts, params)
    for p, c in zip(prompts, together):
        alone = policy.generate([p], params)[0]
        assert alone.token_ids == c.token_ids
        assert torch.allclose(torch.tensor(alone.logprobs), torch.tensor(c.logprobs), atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_prefix_reuse_changes_nothing_but_the_work(tiny, temperature) -> None:
    """Branch-like prompts (two groups sharing long prefixes of different lengths, one loner): encoding each
    shared prefix once gives the same tokens and logprobs as encoding every prompt in full."""
    model, tok = tiny
    base_a = tok("System: you are a careful agent. " * 6)["input_ids"]
    base_b = tok("Another conversation, much shorter.")["input_ids"] * 2
    prompts = [base_a + tok(f" turn {i}" * (i + 1))["input_ids"] for i in range(3)] + [list(base_a)]
    prompts += [base_b + tok(" then")["input_ids"], list(base_b), tok("a loner prompt")["input_ids"]]
    params = [SamplingParams(temperature=temperature, max_new_tokens=8, seed=100 + i) for i in range(len(prompts))]
    shared, full = HFPolicy(model, tok, min_shared_prefix=8), HFPolicy(model, tok, prefix_reuse=False)
    assert shared._prefix_groups(prompts) is not None
    a, b = shared.generate(prompts, params), full.generate(prompts, params)
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4)
    assert shared.prefill_tokens < full.prefill_tokens - 2 * len(base_a)
    # the phase clocks the simulator benchmark reports: both phases ran, so both clocks moved
    assert shared.prefill_s > 0 and shared.decode_s > 0 and full.prefill_s > 0 and full.decode_s > 0


def test_rows_that_finish_early_leave_the_batch_without_changing_the_rest(tiny) -> None:
    """Rows are dropped from the decode batch once half have finished; the rest go on exactly as alone."""
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompts = [tok(f"Prompt number {i} " * (i + 1))["input_ids"] for i in range(5)]
    params = [SamplingParams(temperature=1.0, max_new_tokens=n, seed=i) for i, n in enumerate([2, 3, 2, 12, 9])]
    together = policy.generate(prompts, params)
    assert [len(c.token_ids) for c in together] == [2, 3, 2, 12, 9]
    for p, sp, c in zip(prompts, params, together):
        alone = policy.generate([p], sp)[0]
        assert alone.token_ids == c.token_ids
        assert torch.allclose(torch.tensor(alone.logprobs), torch.tensor(c.logprobs), atol=1e-4)


def test_batched_equals_one_at_a_time_greedy_rollout(tiny) -> None:
    batched = runner(tiny, credit(3), temperature=0.0, max_new=6).collect(specs(3))
    single = runner(tiny, credit(3), temperature=0.0, max_new=6, max_batch_size=1).collect(specs(3))
    for a, b in zip(sorted(batched, key=lambda e: e.seed), sorted(single, key=lambda e: e.seed)):
        assert a.input_ids == b.input_ids
        for ta, tb in zip(a.turns, b.turns):
            assert torch.allclose(torch.tensor(ta.logprobs), torch.tensor(tb.logprobs), atol=1e-4)


def test_seeded_sampling_is_reproducible(tiny) -> None:
    a = runner(tiny, credit(3), seed=11).collect(specs(3))
    b = runner(tiny, credit(3), seed=11).collect(specs(3))
    c = runner(tiny, credit(3), seed=12).collect(specs(3))
    assert [e.input_ids for e in a] == [e.input_ids for e in b]
    assert [[t.logprobs for t in e.turns] for e in a] == [[t.logprobs for t in e.turns] for e in b]
    assert [e.input_ids for e in a] != [e.input_ids for e in c]


def test_seeded_sampling_does_not_depend_on_batch_composition(tiny) -> None:
    full = runner(tiny, credit(2), seed=5, max_new=4).collect(specs(3))
    chunked = runner(tiny, credit(2), seed=5, max_new=4, max_batch_size=1).collect(specs(3))
    assert [e.input_ids for e in full] == [e.input_ids for e in chunked]


# ------------------------------------------------------------------ branching


def test_branch_shares_prefix_and_count(tiny) -> None:
    r = runner(tiny, credit(3), constrained=True, snapshot_turns=True)
    parent = r.collect(specs(1))[0]
    assert sorted(parent.snapshots) == [0, 1, 2]
    temps = [0.0, 0.5, 1.0, 1.5]
    for k in (0, 1, 2):
        pos = parent.turns[k].start
        kids = r.branch(parent, pos, temps)
        assert len(kids) == len(temps)
        assert sorted(t.turns[k].temperature for t in kids) == temps
        for kid in kids:
            assert kid.input_ids[:pos] == parent.input_ids[:pos]
            assert kid.parent_uid == parent.uid and kid.branch_pos == pos
            assert [t.sampled_ids for t in kid.turns[:k]] == [t.sampled_ids for t in parent.turns[:k]]
            assert kid.task_id == parent.task_id and len(kid.turns) == 3 and kid.terminated
            assert kid.messages[: len(parent.messages)][: 2 + 2 * k] == parent.messages[: 2 + 2 * k]
        check_all(kids, tiny, r.policy, whole_template=True)


def test_greedy_branch_of_greedy_episode_reproduces_it(tiny) -> None:
    r = runner(tiny, credit(3), temperature=0.0, snapshot_turns=True, max_new=5)
    parent = r.collect(specs(1))[0]
    (kid,) = r.branch(parent, parent.turns[1].start, [0.0])
    assert kid.input_ids == parent.input_ids
    assert kid.reward == parent.reward and kid.reward_breakdown == parent.reward_breakdown


def test_branch_mid_turn(tiny) -> None:
    r = runner(tiny, credit(3), temperature=1.0, snapshot_turns=True, max_new=6)
    parent = next(e for e in r.collect(specs(4)) if len(e.turns[1].sampled_ids) >= 4)
    t1 = parent.turns[1]
    pos = t1.start + 2
    kids = r.branch(parent, pos, [0.7, 1.0, 1.3])
    assert len(kids) == 3
    for kid in kids:
        assert kid.input_ids[:pos] == parent.input_ids[:pos]
        k1 = kid.turns[1]
        assert k1.start == t1.start and k1.sampled_ids[:2] == t1.sampled_ids[:2]
        assert k1.logprobs[:2] == t1.logprobs[:2]
    for kid in kids:
        check_structure(kid)
        check_conditioned_on(kid, r.policy)
        check_template_deltas(kid, tiny[1])


def test_branch_mid_turn_constrained(tiny) -> None:
    r = runner(tiny, credit(2), constrained=True, snapshot_turns=True)
    parent = r.collect(specs(1))[0]
    t0 = parent.turns[0]
    (kid,) = r.branch(parent, t0.start + 1, [1.0])  # after the digit: only EOS may follow
    assert kid.turns[0].sampled_ids == t0.sampled_ids and kid.turns[0].text == t0.text
    check_all([kid], tiny, r.policy, whole_template=True)


@pytest.mark.parametrize("crn", [True, False])
def test_branch_common_random_numbers(tiny, crn: bool) -> None:
    """With common random numbers, continuation j from turn 1 and continuation j from turn 2 of the same
    episode sample turn 2 with the same seed (so the luck of later turns cancels in V̂(2) − V̂(1));
    without, every continuation of every point has its own seeds."""
    r = runner(tiny, credit(3), constrained=True, snapshot_turns=True)
    parent = r.collect(specs(1))[0]
    seen: list[list[int | None]] = []
    generate = r.policy.generate

    def record(prompts, params):
        seen.append([p.seed for p in params])
        return generate(prompts, params)

    r.policy.generate = record
    kids = r.branch_many(
        [(parent, parent.turns[1].start, [1.0]), (parent, parent.turns[2].start, [1.0])], common_random_numbers=crn
    )
    assert len(kids) == 2 and all(k.terminated for k in kids)
    # round 1: [from-turn-1 samples turn 1, from-turn-2 samples turn 2]; round 2: [from-turn-1 samples turn 2]
    assert [len(x) for x in seen] == [2, 1]
    assert (seen[1][0] == seen[0][1]) is crn
    assert seen[0][0] != seen[0][1]


def test_branch_many_and_bad_positions(tiny) -> None:
    r = runner(tiny, credit(2), constrained=True, snapshot_turns=True)
    a, b = r.collect(specs(2))
    calls = r.policy.calls
    kids = r.branch_many([(a, a.turns[0].start, [1.0, 1.0]), (b, b.turns[1].start, [0.0])])
    assert [k.parent_uid for k in kids].count(a.uid) == 2 and [k.parent_uid for k in kids].count(b.uid) == 1
    assert r.policy.calls - calls == 2, "all continuations generate together, one call per round"
    with pytest.raises(ValueError, match="not an agent token"):
        r.branch(a, 0, [1.0])  # a prompt token
    if a.turns[0].env_ids:
        with pytest.raises(ValueError, match="not an agent token"):
            r.branch(a, a.turns[0].start + len(a.turns[0].sampled_ids), [1.0])  # an env token
    no_snap = runner(tiny, credit(2), constrained=True)
    e = no_snap.collect(specs(1))[0]
    with pytest.raises(ValueError, match="snapshot_turns=True"):
        no_snap.branch(e, e.turns[0].start, [1.0])


# ------------------------------------------------------------------ SmolLM2


@pytest.mark.slow
def test_token_exact_smollm2() -> None:
    from agentrl.inference.models import load_model

    model, tok = load_model("smollm2-135m")
    model.eval()
    sm = (model, tok)
    r = runner(sm, credit(2), temperature=1.0, max_new=6)
    eps = r.collect(specs(2))
    check_all(eps, sm, r.policy)
    rc = runner(sm, credit(2), constrained=True, temperature=1.0)
    eps = rc.collect(specs(2))
    check_all(eps, sm, rc.policy, whole_template=True)


# ------------------------------------------------------------------ chat templates

CHATML = "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
GEN = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{{ messages[0]['content'] }}\nTools:{% for t in tools %} {{ t['function']['name'] }}"
    "{% endfor %}<|im_end|>\n{% for m in messages[1:] %}" + CHATML + "{% endfor %}"
    "{% else %}{% for m in messages %}" + CHATML + "{% endfor %}{% endif %}" + GEN
)


def tokenizer_with(template: str | None):
    from agentrl.inference.models import load_tokenizer

    tok = load_tokenizer("tiny-random")
    tok.chat_template = template
    return tok


def test_template_with_tools_support(tiny, notes_env_cls) -> None:
    from agentrl.core.tools import TOOL_CALL_FORMAT

    model, _ = tiny
    tok = tokenizer_with(TOOLS_TEMPLATE)
    fmt = ChatFormatter(tok)
    assert fmt.supports_tools
    r = RolloutRunner(
        notes_constrained_env(notes_env_cls),
        RecordingPolicy(model, tok),
        fmt,
        SamplingParams(temperature=1.0, max_new_tokens=64),
        constrained=True,
    )
    eps = r.collect(specs(3))
    env = notes_env_cls()
    obs, info = env.reset(seed=0)
    prompt = tok.decode(eps[0].prompt_ids)
    assert prompt.startswith("<|im_start|>system\nYou keep notes.\nTools: put get add boom<|im_end|>\n")
    assert TOOL_CALL_FORMAT not in prompt, "the template shows the tools; the env's own tool block is dropped"
    want = tok.apply_chat_template(
        [{"role": "system", "content": info["system_without_tools"]}, dict(obs[1])],
        tools=info["tools"],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert eps[0].prompt_ids == fmt.tok(want, add_special_tokens=False)["input_ids"]
    for ep in eps:
        check_structure(ep)
        check_conditioned_on(ep, r.policy)
    check_rescoring(eps, model, r.policy.pad_id)


def test_prompt_ids_from_the_typed_prompt_equal_the_info_route(tiny, notes_env_cls) -> None:
    """ChatFormatter renders env.prompt(); a Gymnasium reset's (obs, info) gives the same ids (SFT's route)."""
    _, tok = tiny
    for fmt in (ChatFormatter(tok), ChatFormatter(tokenizer_with(TOOLS_TEMPLATE))):
        for env in (
            notes_env_cls(),
            gym.make("agentrl/CreditChain-v0").unwrapped,
            gym.make("agentrl/ToolUse-v0", schema="compact").unwrapped,
        ):
            obs, info = env.reset(seed=0)
            assert fmt.prompt_ids(env.prompt()) == fmt.prompt_ids(list(obs), info)
    assert ChatFormatter(tok).prompt_ids(list(obs)) == ChatFormatter(tok).prompt_ids(
        list(obs), info
    )  # no tools= support


def test_runner_refuses_envs_that_are_not_multi_turn_envs(tiny) -> None:
    r = runner(tiny, lambda: gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="MultiTurnEnv envs; make_env\\(\\) gave CartPoleEnv"):
        r.collect(specs(1))


def test_templates_that_cannot_be_token_exact_are_refused() -> None:
    with pytest.raises(ValueError, match="no chat template"):
        ChatFormatter(tokenizer_with(None))
    decorated = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n[A] {{ m['content'] }}<|im_end|>\n"
        "{% else %}" + CHATML + "{% endif %}{% endfor %}" + GEN
    )
    with pytest.raises(ValueError, match="plain suffix"):
        ChatFormatter(tokenizer_with(decorated))
    # earlier assistant turns re-rendered once later messages exist (like templates that drop old reasoning)
    rerender = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}<|im_start|>assistant\n...<|im_end|>\n"
        "{% else %}" + CHATML + "{% endif %}{% endfor %}" + GEN
    )
    fmt = ChatFormatter(tokenizer_with(rerender))
    with pytest.raises(ValueError, match="re-renders earlier turns"):
        fmt.delta_ids([{"role": "user", "content": "next"}], [5])


# ------------------------------------------------------------------ the transformers backend


def test_backend_argument_checks(tiny) -> None:
    model, tok = tiny
    policy = HFPolicy(model, tok)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        policy.generate([[1, 2], []], SamplingParams())
    with pytest.raises(ValueError, match="2 SamplingParams for 3 prompts"):
        policy.generate([[1]] * 3, [SamplingParams(), SamplingParams()])
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_backend_stop_strings_top_p_and_mixed_rows(tiny) -> None:
    model, tok = tiny
    policy = HFPolicy(model, tok)
    prompt = tok("The weather today")["input_ids"]
    free = policy.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=12))[0]
    assert free.finish_reason == "length" and len(free.token_ids) == 12
    stop_at = tok.decode(free.token_ids[:4])
    cut = policy.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=12, stop=(stop_at,)))[0]
    assert (
        cut.finish_reason == "stop"
        and cut.token_ids == free.token_ids[: len(cut.token_ids)]
        and len(cut.token_ids) <= 4
    )
    # a greedy row and seeded sampled rows in one batch: each row as if alone
    ps = [
        SamplingParams(temperature=0.0, max_new_tokens=6),
        SamplingParams(temperature=1.0, top_p=0.5, max_new_tokens=6, seed=3),
        SamplingParams(temperature=2.0, max_new_tokens=3, seed=4),
    ]
    together = policy.generate([prompt, prompt[:2], prompt], ps)
    assert [len(c.token_ids) for c in together] == [6, 6, 3]
    for p, params, c in zip([prompt, prompt[:2], prompt], ps, together):
        assert policy.generate([p], params)[0].token_ids == c.token_ids
    # top_p=tiny keeps only the most likely token: the same as greedy
    nucleus = policy.generate([prompt], SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=12, seed=9))[0]
    assert nucleus.token_ids == free.token_ids


def test_backend_constrained_to_allowed(tiny) -> None:
    model, tok = tiny
    policy = HFPolicy(model, tok)
    allowed = [tok("yes")["input_ids"] + [2], tok("no way")["input_ids"] + [2]]
    for seed in range(6):
        c = policy.generate([[1, 5, 9]], SamplingParams(temperature=1.5, max_new_tokens=8, seed=seed, allowed=allowed))[
            0
        ]
        assert c.token_ids in allowed and c.finish_reason == "stop"


def test_hf_chat_model(tiny) -> None:
    import copy

    from agentrl.core.chat import ChatModel
    from agentrl.inference.hf import HFChatModel

    model, tok = tiny
    cm = HFChatModel(model, tok)
    assert isinstance(cm, ChatModel) and copy.deepcopy(cm) is cm
    msgs = [{"role": "user", "content": "hi"}]
    a = cm.complete(msgs, max_tokens=5)
    assert isinstance(a, str) and a == cm.complete(msgs, max_tokens=5)  # temperature 0 is deterministic
    batch = cm.complete_batch([msgs, [{"role": "user", "content": "other"}]], temperature=1.0, max_tokens=5, seed=1)
    assert len(batch) == 2 and batch == cm.complete_batch(
        [msgs, [{"role": "user", "content": "other"}]], temperature=1.0, max_tokens=5, seed=1
    )
    assert cm.calls == 4
    with pytest.raises(ValueError, match="role"):
        cm.complete([{"role": "robot", "content": "x"}])


def test_reward_components_become_training_metrics() -> None:
    """Each numeric reward_breakdown key is averaged over the episodes that report it (FlightBooking's
    policy_violations reaches metrics.jsonl as breakdown/policy_violations)."""
    from agentrl.train.batch_metrics import episode_metrics

    eps = [
        Episode(prompt_ids=[1], reward=0.0, reward_breakdown={"policy_violations": 2.0, "db_match": 1.0}),
        Episode(prompt_ids=[1], reward=1.0, reward_breakdown={"policy_violations": 0.0}),
        Episode(prompt_ids=[1], reward=1.0),
    ]
    m = episode_metrics(eps)
    assert m["breakdown/policy_violations"] == 1.0 and m["breakdown/db_match"] == 1.0
    assert abs(m["reward/mean"] - 2 / 3) < 1e-9
