"""Task families around flight disruptions and service requests: compensation for a cancelled or delayed
flight (with the cancellation or the change the user also wants), flight status, total paid, and
transfers to a human agent for requests the tools cannot handle.
"""

from __future__ import annotations

import datetime as dt

from ..policy import (
    CERTIFICATE_CANCELLED,
    CERTIFICATE_DELAYED,
    airline_cancelled,
    any_flown,
    compensation_eligible,
)
from ..tasks import Action
from ..tasks.drafts import Ctx, Draft, GoalDraft, uid_of
from ..tasks.wording import (
    ANYTHING_ELSE,
    OUT_OF_SCOPE,
    REASON_WORDS,
    cabin_words,
    date_words,
    describe_payment,
    fmt_money,
    money_token,
)
from ..world import Available, Reservation, User, money
from .reservation import cancel_goal


def _compensation_goal(
    ctx: Ctx, u: User, r: Reservation, fn: str, date: str, per_pax: int, why: str, reads: list[Action]
) -> GoalDraft:
    uid, n = uid_of(u, ctx), len(r.passengers)
    ok = compensation_eligible(u, r)
    amount = per_pax * n
    request = f"{why} I'd like some compensation for this."
    if ok.allowed:
        goal = {
            "kind": "compensation", "outcome": "do", "request": request, "confirm": [["certificate"], [money_token(amount)]],
            "gold_proposal": (f"I'm sorry about flight {fn} on {date}. Since {ok.why}, I can offer a travel certificate of {fmt_money(amount)} "
                              f"({fmt_money(per_pax)} for each of the {n} passenger{'s' if n > 1 else ''}) as a gesture. Do you want me to send it (yes/no)?"),
            "gold_reply": f"The certificate has been added to your profile. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = reads + [Action(name="send_certificate", arguments={"user_id": uid, "amount": amount})]
    else:
        goal = {
            "kind": "compensation", "outcome": "refuse", "request": request, "confirm": [["certificate"]],
            "gold_reply": f"I'm sorry about flight {fn}, but I'm not able to offer compensation: {ok.why}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = reads
    return GoalDraft(goal, acts, f"{why} You ask for compensation. If the agent says you are not eligible, accept it.")


def fam_compensation_cancelled(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    got = ctx.pick(split, lambda u, r: airline_cancelled(db, r) and not any_flown(db, r))
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    seg = next(s for s in r.flights if db.flight_date(s.flight_number, s.date).status == "cancelled")
    known = {
        "user_id": f"My user id is {uid}.",
        "reservation_id": f"The reservation id is {rid}.",
        "reason": REASON_WORDS["airline_cancelled"],
    }
    why = f"My flight {seg.flight_number} on {seg.date} (reservation {rid}) was cancelled by the airline, which is really frustrating."
    goals = []
    also_cancel = rng.random() < 0.4
    if also_cancel:
        goals.append(cancel_goal(ctx, u, r, "airline_cancelled", []))
    reads = [ctx.read("get_user_details", user_id=uid)[0]]
    if not also_cancel:
        reads.append(ctx.read("get_reservation_details", reservation_id=rid)[0])
    reads.append(ctx.read("get_flight_status", flight_number=seg.flight_number, date=seg.date)[0])
    goals.append(
        _compensation_goal(
            ctx,
            u,
            r,
            seg.flight_number,
            seg.date,
            CERTIFICATE_CANCELLED,
            why if not also_cancel else "Also, the cancelled flight ruined my plans.",
            reads,
        )
    )
    if also_cancel:
        goals[0].goal["request"] = (
            f"My flight {seg.flight_number} on {seg.date} was cancelled by the airline, so I want to cancel my whole reservation {rid}."
        )
    return Draft("compensation_cancelled" + ("_with_cancel" if also_cancel else ""), uid, goals, known)


def fam_delay(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    today = ctx.today.isoformat()
    tomorrow = (ctx.today + dt.timedelta(days=1)).isoformat()

    def fits(u: User, r: Reservation) -> bool:
        if r.cabin == "basic_economy" or len(r.flights) > 2 or r.flights[0].date != today:
            return False
        st = ctx.statuses(r)
        if st[0] != "delayed" or not all(s == "available" for s in st[1:]):
            return False
        if len(r.flights) == 2 and (
            r.flights[1].date <= tomorrow
            or r.flights[1].origin != r.flights[0].destination
            or r.flight_type != "round_trip"
        ):
            return False
        fd = db.flight_date(r.flights[0].flight_number, tomorrow)
        return isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= len(r.passengers)

    cands = ctx.reservations(split, fits)
    for u, r in rng.sample(cands, len(cands)):
        seg = r.flights[0]
        new_price = getattr(db.flight_date(seg.flight_number, tomorrow).prices, r.cabin)
        diff = money((new_price - seg.price) * len(r.passengers))
        pid = ctx.change_payment(u, diff)
        if pid is not None:
            break
    else:
        return None
    ctx.used.add(r.reservation_id)
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}.",
             "date": f"I want to take the same flight, {seg.flight_number}, tomorrow ({tomorrow}) instead.",
             "flight": f"The same flight, {seg.flight_number}, on {tomorrow}.", "payment": f"Please use {describe_payment(u, pid)} for any difference.",
             "reason": "My flight today is delayed."}  # fmt: skip
    reads = [ctx.read("get_reservation_details", reservation_id=rid)[0], ctx.read("get_flight_status", flight_number=seg.flight_number, date=today)[0],
             ctx.read("search_direct_flight", origin=seg.origin, destination=seg.destination, date=tomorrow)[0]]  # fmt: skip
    flights = [{"flight_number": seg.flight_number, "date": tomorrow}] + [
        {"flight_number": s.flight_number, "date": s.date} for s in r.flights[1:]
    ]
    confirm = [[rid], [seg.flight_number], date_words(tomorrow)] + ([[money_token(abs(diff))]] if diff else [])
    money_text = (f"The fare difference of {fmt_money(abs(diff))} will be {'charged to' if diff > 0 else 'refunded to'} {describe_payment(u, pid, 'your')}."
                  if diff else "There is no fare difference.")  # fmt: skip
    change = GoalDraft(
        {"kind": "change_flights", "outcome": "do", "confirm": confirm,
         "request": f"My flight {seg.flight_number} today on reservation {rid} is delayed. I'd like to move it to the same flight tomorrow, {tomorrow}.",
         "gold_proposal": (f"Flight {seg.flight_number} today is indeed delayed. I can move reservation {rid} from flight {seg.flight_number} on {today} to "
                           f"flight {seg.flight_number} on {tomorrow} in {cabin_words(r.cabin)}. {money_text} Do you confirm that I should make this change (yes/no)?"),
         "gold_reply": f"Your flight has been changed to {tomorrow}. {ANYTHING_ELSE}"},
        reads + [Action(name="update_reservation_flights", arguments={"reservation_id": rid, "cabin": r.cabin, "flights": flights, "payment_id": pid})],
        f"Your flight {seg.flight_number} today (reservation {rid}) is delayed; you want to move to the same flight tomorrow, paying any difference with {pid}.",
    )  # fmt: skip
    comp = _compensation_goal(
        ctx,
        u,
        r,
        seg.flight_number,
        today,
        CERTIFICATE_DELAYED,
        "Also, because of the delay,",
        [ctx.read("get_user_details", user_id=uid)[0]],
    )
    comp.goal["request"] = "Also, this delay really messed up my day. I'd like some compensation for it."
    return Draft("delay_change_compensation", uid, [change, comp], known)


def fam_transfer(ctx: Ctx, split: str) -> Draft | None:
    rng = ctx.rng
    uids = ctx.users[split]
    if not uids:
        return None
    uid = rng.choice(uids)
    text, what = rng.choice(OUT_OF_SCOPE)
    known = {"user_id": f"My user id is {uid}."}
    act = Action(
        name="transfer_to_human_agents",
        arguments={"summary": f"User {uid} wants to {what}, which the agent's tools cannot do."},
    )
    goal = {"kind": "transfer", "outcome": "transfer", "request": text}
    return Draft(
        "out_of_scope_transfer",
        uid,
        [GoalDraft(goal, [act], f"{text} You expect to be helped by someone who can do it.")],
        known,
    )


def fam_flight_status(ctx: Ctx, split: str) -> Draft | None:
    db = ctx.db
    today = ctx.today.isoformat()
    got = ctx.pick(
        split,
        lambda u, r: any(
            s.date == today
            and db.flight_date(s.flight_number, s.date).status in ("delayed", "on time", "flying", "cancelled")
            for s in r.flights
        ),
    )
    if got is None:
        return None
    u, r = got
    seg = next(
        s for s in r.flights if s.date == today and db.flight_date(s.flight_number, s.date).status != "available"
    )
    act, info = ctx.read("get_flight_status", flight_number=seg.flight_number, date=today)
    status = info["status"]
    times = ""
    if "estimated_departure_time_est" in info:
        times = f", expected to depart at {info['estimated_departure_time_est'][11:16]}"
    elif "estimated_arrival_time_est" in info:
        times = f", expected to land at {info['estimated_arrival_time_est'][11:16]}"
    goal = {
        "kind": "info", "outcome": "answer", "request": f"What's the status of my flight {seg.flight_number} today?",
        "answer": [status], "gold_reply": f"Flight {seg.flight_number} on {today} is {status}{times}. {ANYTHING_ELSE}",
    }  # fmt: skip
    known = {"flight": f"It's flight {seg.flight_number}, today ({today})."}
    return Draft(
        "flight_status",
        uid_of(u, ctx),
        [GoalDraft(goal, [act], f"You want to know the status of your flight {seg.flight_number} today ({today}).")],
        known,
        outputs=[status],
    )


def fam_total_paid(ctx: Ctx, split: str) -> Draft | None:
    got = ctx.pick(split, lambda u, r: len(r.payment_history) >= 1)
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    acts = [ctx.read("get_reservation_details", reservation_id=rid)[0]]
    paid = r.paid()
    if len(r.payment_history) > 1:
        acts.append(ctx.read("calculate", expression=" + ".join(money_token(p.amount) for p in r.payment_history))[0])
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservation id is {rid}."}
    goal = {
        "kind": "info", "outcome": "answer", "request": f"How much have I paid in total for my reservation {rid}?",
        "answer": [money_token(paid)], "gold_reply": f"You have paid {fmt_money(paid)} in total for reservation {rid}. {ANYTHING_ELSE}",
    }  # fmt: skip
    return Draft(
        "total_paid",
        uid,
        [GoalDraft(goal, acts, f"You want to know how much you paid in total for reservation {rid}.")],
        known,
        outputs=[money_token(paid)],
    )
