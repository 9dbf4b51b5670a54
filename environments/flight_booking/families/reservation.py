"""Task families on a user's existing reservations: cancel (allowed, refused, partly flown), change a flight,
upgrade the cabin, add bags (and the refused bag / insurance changes), change passengers, and two requests
on two reservations (bags, then a cancellation).
"""

from __future__ import annotations

import datetime as dt

from ..policy import (
    FREE_BAGS,
    MAX_PASSENGERS,
    airline_cancelled,
    any_flown,
    booked_within_24h,
    can_cancel,
    nonfree_bags,
)  # fmt: skip
from ..tasks import Action
from ..tasks.drafts import Ctx, Draft, GoalDraft, known_ids, uid_of
from ..tasks.wording import (
    ANYTHING_ELSE,
    REASON_WORDS,
    bag_words,
    cabin_words,
    date_words,
    describe_payment,
    fmt_money,
    money_token,
    plural,
    res_ref,
    trip_words,
)
from ..world import Available, Reservation, User, money


def cancel_goal(
    ctx: Ctx, u: User, r: Reservation, reason: str, lookups: list[Action], insist: int = 0, ref: str = ""
) -> GoalDraft:
    rid = r.reservation_id
    decision = can_cancel(ctx.db, r, reason)
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    request = f"I need to cancel my {ref or f'reservation {rid}'}."
    base = {"kind": "cancel", "request": request, "confirm": [[rid]]}
    if decision.allowed:
        goal = base | {
            "outcome": "do",
            "gold_proposal": (f"Reservation {rid} ({trip_words(r)}) can be cancelled because {decision.why}. The refund of "
                              f"{fmt_money(r.paid())} goes back to the original payment methods in 5 to 7 business days. "
                              f"Do you confirm that I should cancel it (yes/no)?"),
            "gold_reply": f"Reservation {rid} is now cancelled. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read, Action(name="cancel_reservation", arguments={"reservation_id": rid})]
        instruction = f"You want to cancel reservation {rid} ({REASON_WORDS[reason].lower()})."
    else:
        goal = base | {
            "outcome": "refuse", "insist": insist, "pushback": f"Are you sure? I really need to cancel reservation {rid}.",
            "gold_reply": f"I'm sorry, but I cannot cancel reservation {rid}: {decision.why}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = (f"You want to cancel reservation {rid} ({REASON_WORDS[reason].lower()}). If the agent says it cannot be "
                       f"cancelled, " + ("insist once, then " if insist else "") + "accept it.")  # fmt: skip
    return GoalDraft(goal, acts, instruction)


def fam_cancel(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    clock = ctx.world.clock
    if allowed:
        kind = rng.choice(["recent", "airline", "business", "insured"])
        preds = {
            "recent": (lambda u, r: booked_within_24h(r, clock) and not any_flown(db, r), "change_of_plan"),
            "airline": (lambda u, r: airline_cancelled(db, r) and not any_flown(db, r) and not booked_within_24h(r, clock), "airline_cancelled"),
            "business": (lambda u, r: r.cabin == "business" and ctx.all_available(r) and not booked_within_24h(r, clock), "change_of_plan"),
            "insured": (lambda u, r: r.insurance == "yes" and r.cabin != "business" and ctx.all_available(r) and not booked_within_24h(r, clock), rng.choice(["health", "weather"])),
        }  # fmt: skip
        pred, reason = preds[kind]
    else:
        reason = rng.choice(["change_of_plan", "change_of_plan", "health", "weather"])
        pred = lambda u, r: ctx.all_available(r) and not can_cancel(db, r, reason).allowed
    got = ctx.pick(split, pred)
    if got is None:
        return None
    u, r = got
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    known["reason"] = REASON_WORDS[reason]
    g = cancel_goal(ctx, u, r, reason, lookups, insist=0 if allowed else rng.choice([0, 0, 1]), ref=res_ref(r, known))
    return Draft("cancel_allowed" if allowed else "cancel_refused", uid_of(u, ctx), [g], known, unknown)


def fam_cancel_flown(ctx: Ctx, split: str) -> Draft | None:
    db = ctx.db
    got = ctx.pick(split, lambda u, r: any_flown(db, r) and "available" in ctx.statuses(r))
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known = {
        "user_id": f"My user id is {uid}.",
        "reservation_id": f"The reservation id is {rid}.",
        "reason": REASON_WORDS["change_of_plan"],
    }
    summary = f"User {uid} wants to cancel reservation {rid}, part of which has already been flown."
    acts = [
        ctx.read("get_reservation_details", reservation_id=rid)[0],
        Action(name="transfer_to_human_agents", arguments={"summary": summary}),
    ]
    goal = {
        "kind": "cancel",
        "outcome": "transfer",
        "request": f"I want to cancel the rest of my trip, reservation {rid}; I won't take the return flight.",
        "confirm": [[rid]],
    }
    return Draft(
        "cancel_flown_transfer",
        uid,
        [GoalDraft(goal, acts, f"You want to cancel reservation {rid}, whose outbound flight you already took.")],
        known,
    )


def fam_change_flight(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    if allowed:
        pred = lambda u, r: r.cabin != "basic_economy" and ctx.all_available(r) and len(r.flights) <= 2
    else:
        pred = lambda u, r: r.cabin == "basic_economy" and ctx.all_available(r) and len(r.flights) <= 2
    for _ in range(20):
        cands = ctx.reservations(split, pred)
        if not cands:
            return None
        u, r = rng.choice(cands)
        n = len(r.passengers)
        # move the last segment (one-way: the flight; round trip: the return) to another day, same flight number
        seg = r.flights[-1]
        lo = r.flights[0].date if len(r.flights) == 2 else None
        days = [d for d in ctx.days if d > ctx.today.isoformat() and d != seg.date and (lo is None or d > lo)]
        days = [d for d in days if abs((dt.date.fromisoformat(d) - dt.date.fromisoformat(seg.date)).days) <= 4]
        rng.shuffle(days)
        for new_date in days:
            fd = db.flight_date(seg.flight_number, new_date)
            if isinstance(fd, Available) and getattr(fd.available_seats, r.cabin) >= n:
                break
        else:
            continue
        new_price = getattr(fd.prices, r.cabin)
        diff = money((new_price - seg.price) * n)
        pid = ctx.change_payment(u, diff)
        if pid is None:
            continue
        ctx.used.add(r.reservation_id)
        break
    else:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    which = "return flight" if len(r.flights) == 2 else "flight"
    known["date"] = f"I want to move my {which} {seg.flight_number} from {seg.date} to {new_date}, same flight number."
    known["flight"] = f"The same flight, {seg.flight_number}, on {new_date}."
    known["payment"] = f"Please use {describe_payment(u, pid)} for any difference."
    request = (
        f"I'd like to change my {which} {seg.flight_number} on {seg.date} to {new_date}, on my {res_ref(r, known)}."
    )
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    search = ctx.read("search_direct_flight", origin=seg.origin, destination=seg.destination, date=new_date)[0]
    confirm = [[rid], [seg.flight_number], date_words(new_date)]
    if allowed:
        if diff > 0:
            money_text = (
                f"The fare difference of {fmt_money(diff)} will be charged to {describe_payment(u, pid, 'your')}."
            )
        elif diff < 0:
            money_text = (
                f"The fare difference of {fmt_money(-diff)} will be refunded to {describe_payment(u, pid, 'your')}."
            )
        else:
            money_text = "There is no fare difference."
        if diff:
            confirm.append([money_token(abs(diff))])
        flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights[:-1]] + [
            {"flight_number": seg.flight_number, "date": new_date}
        ]
        write = Action(
            name="update_reservation_flights",
            arguments={"reservation_id": rid, "cabin": r.cabin, "flights": flights, "payment_id": pid},
        )
        goal = {
            "kind": "change_flights", "outcome": "do", "request": request, "confirm": confirm,
            "gold_proposal": (f"I can change reservation {rid}: flight {seg.flight_number} moves from {seg.date} to {new_date} in "
                              f"{cabin_words(r.cabin)}; the other flights stay as they are. {money_text} Do you confirm that I should make this change (yes/no)?"),
            "gold_reply": f"Your flight has been changed. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read, search, write]
        instruction = f"You want to move flight {seg.flight_number} of reservation {rid} from {seg.date} to {new_date} (same flight number), paying any difference with {pid}."
    else:
        goal = {
            "kind": "change_flights", "outcome": "refuse", "request": request, "confirm": confirm,
            "gold_reply": f"I'm sorry, but reservation {rid} is in basic economy, and basic economy flights cannot be changed. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = f"You want to move flight {seg.flight_number} of reservation {rid} from {seg.date} to {new_date}. If the agent says it is not allowed, accept it."
    return Draft(
        "change_flight" if allowed else "change_flight_refused",
        uid,
        [GoalDraft(goal, acts, instruction)],
        known,
        unknown,
    )


def fam_change_cabin(ctx: Ctx, split: str) -> Draft | None:
    rng, db = ctx.rng, ctx.db
    ups = {"basic_economy": ["economy", "business"], "economy": ["business"]}

    def fits(u: User, r: Reservation) -> bool:
        return r.cabin in ups and ctx.all_available(r)

    for _ in range(20):
        cands = ctx.reservations(split, fits)
        if not cands:
            return None
        u, r = rng.choice(cands)
        new = rng.choice(ups[r.cabin])
        n = len(r.passengers)
        fds = [db.flight_date(s.flight_number, s.date) for s in r.flights]
        if not all(getattr(fd.available_seats, new) >= n for fd in fds):
            continue
        diff = money((sum(getattr(fd.prices, new) for fd in fds) - sum(s.price for s in r.flights)) * n)
        pid = ctx.change_payment(u, diff)
        if pid is None or diff == 0:
            continue
        ctx.used.add(r.reservation_id)
        break
    else:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    known["cabin"] = f"I want {cabin_words(new)} for all flights of the reservation."
    known["payment"] = f"Please use {describe_payment(u, pid)}."
    flights = [{"flight_number": s.flight_number, "date": s.date} for s in r.flights]
    write = Action(
        name="update_reservation_flights",
        arguments={"reservation_id": rid, "cabin": new, "flights": flights, "payment_id": pid},
    )
    charged = (
        f"charged to {describe_payment(u, pid, 'your')}"
        if diff > 0
        else f"refunded to {describe_payment(u, pid, 'your')}"
    )
    goal = {
        "kind": "change_cabin", "outcome": "do",
        "request": f"I'd like to upgrade my {res_ref(r, known)} to {cabin_words(new)}.",
        "confirm": [[rid], [cabin_words(new)], [money_token(abs(diff))]],
        "gold_proposal": (f"I can change the cabin of reservation {rid} from {cabin_words(r.cabin)} to {cabin_words(new)} for all its flights "
                          f"({', '.join(f['flight_number'] for f in flights)}). The price difference at today's prices is {fmt_money(abs(diff))}, "
                          f"{charged}. Do you confirm that I should make this change (yes/no)?"),
        "gold_reply": f"Your reservation is now in {cabin_words(new)}. {ANYTHING_ELSE}",
    }  # fmt: skip
    acts = lookups + [ctx.read("get_reservation_details", reservation_id=rid)[0], write]
    return Draft(
        "change_cabin",
        uid,
        [GoalDraft(goal, acts, f"You want to change reservation {rid} to {cabin_words(new)}, paying with {pid}.")],
        known,
        unknown,
    )


def _bags_goal(ctx: Ctx, u: User, r: Reservation, lookups: list[Action]) -> GoalDraft | None:
    rng = ctx.rng
    n = len(r.passengers)
    add = rng.randint(1, 3)
    total = r.total_baggages + add
    nonfree = max(r.nonfree_baggages, nonfree_bags(u.membership, r.cabin, n, total))
    fee = money(50 * (nonfree - r.nonfree_baggages))
    pid = ctx.change_payment(u, fee)
    if pid is None:
        return None
    rid, uid = r.reservation_id, uid_of(u, ctx)
    free = FREE_BAGS[u.membership][r.cabin]
    confirm = [[rid], bag_words(total)] + ([[money_token(fee)]] if fee else [])
    fee_text = (
        f"The fee is {fmt_money(fee)}, charged to {describe_payment(u, pid, 'your')}."
        if fee
        else "They are all free, so there is no fee."
    )
    goal = {
        "kind": "add_bags", "outcome": "do",
        "request": f"I'd like to add {plural(add, 'checked bag')} to my reservation {rid}.",
        "confirm": confirm,
        "gold_proposal": (f"Reservation {rid} will have {plural(total, 'checked bag')} in total, {nonfree} of them non-free: as a {u.membership} member "
                          f"you get {plural(free, 'free bag')} per passenger in {cabin_words(r.cabin)}, for {plural(n, 'passenger')}. "
                          f"{fee_text} Do you confirm that I should update the bags (yes/no)?"),
        "gold_reply": f"Your bags have been updated. {ANYTHING_ELSE}",
    }  # fmt: skip
    acts = lookups + [
        ctx.read("get_user_details", user_id=uid)[0], ctx.read("get_reservation_details", reservation_id=rid)[0],
        Action(name="update_reservation_baggages", arguments={"reservation_id": rid, "total_baggages": total, "nonfree_baggages": nonfree, "payment_id": pid}),
    ]  # fmt: skip
    if lookups and lookups[0].name == "get_user_details":
        acts.pop(1)  # the lookup already read the user
    return GoalDraft(goal, acts, f"You want to add {add} checked bags to reservation {rid}, paying any fee with {pid}.")


def fam_add_bags(ctx: Ctx, split: str) -> Draft | None:
    got = ctx.pick(split, lambda u, r: ctx.all_available(r))
    if got is None:
        return None
    u, r = got
    known, _, _ = known_ids(u, r, ctx.rng, ctx, hide_rid=0.0)
    g = _bags_goal(ctx, u, r, [])
    if g is None:
        return None
    known["payment"] = f"Please use {g.actions[-1].arguments['payment_id']}."
    known["bags"] = g.goal["request"]
    return Draft("add_bags", uid_of(u, ctx), [g], known)


def fam_bags_or_insurance_refused(ctx: Ctx, split: str) -> Draft | None:
    rng = ctx.rng
    kind = rng.choice(["remove_bags", "add_insurance"])
    pred = (
        (lambda u, r: r.total_baggages >= 1 and ctx.all_available(r))
        if kind == "remove_bags"
        else (lambda u, r: r.insurance == "no" and ctx.all_available(r))
    )
    got = ctx.pick(split, pred)
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, _, _ = known_ids(u, r, rng, ctx, hide_rid=0.0)
    acts = [ctx.read("get_reservation_details", reservation_id=rid)[0]]
    if kind == "remove_bags":
        goal = {"kind": "remove_bags", "outcome": "refuse", "request": f"I'd like to remove one checked bag from reservation {rid} and get refunded for it.",
                "confirm": [[rid], bag_words(r.total_baggages - 1)],
                "gold_reply": f"I'm sorry, but checked bags cannot be removed from a reservation once added, so I cannot remove a bag from {rid}. {ANYTHING_ELSE}"}  # fmt: skip
        instruction = f"You want to remove one checked bag from reservation {rid}. If the agent says it is not possible, accept it."
    else:
        goal = {"kind": "add_insurance", "outcome": "refuse", "request": f"I'd like to add travel insurance to my reservation {rid}.",
                "confirm": [[rid], ["insurance"]],
                "gold_reply": f"I'm sorry, but travel insurance cannot be added after booking, so I cannot add it to {rid}. {ANYTHING_ELSE}"}  # fmt: skip
        instruction = (
            f"You want to add travel insurance to reservation {rid}. If the agent says it is not possible, accept it."
        )
    return Draft(f"{kind}_refused", uid, [GoalDraft(goal, acts, instruction)], known)


def fam_change_passenger(ctx: Ctx, split: str, allowed: bool) -> Draft | None:
    rng = ctx.rng
    got = ctx.pick(
        split,
        lambda u, r: (
            ctx.all_available(r)
            and (not allowed or len(r.passengers) >= 1)
            and (allowed or len(r.passengers) < MAX_PASSENGERS)
        ),
    )
    if got is None:
        return None
    u, r = got
    rid, uid = r.reservation_id, uid_of(u, ctx)
    known, unknown, lookups = known_ids(u, r, rng, ctx)
    names = {(p.first_name, p.last_name) for p in r.passengers}
    pool = [p for p in u.saved_passengers if (p.first_name, p.last_name) not in names]
    new = pool[0].model_dump() if pool else {"first_name": rng.choice(["Liam", "Emma", "Lucas", "Mia"]), "last_name": rng.choice(["Lopez", "Brown", "Ahmed"]),
                                               "dob": f"{rng.randint(1950, 2008)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}  # fmt: skip
    if (new["first_name"], new["last_name"]) in names:
        return None
    read = ctx.read("get_reservation_details", reservation_id=rid)[0]
    who = f"{new['first_name']} {new['last_name']}, born {new['dob']}"
    confirm = [[rid], [new["first_name"]], [new["last_name"]], date_words(new["dob"])]
    if allowed:
        i = rng.randrange(len(r.passengers))
        old = r.passengers[i]
        passengers = [p.model_dump() for p in r.passengers]
        passengers[i] = new
        known["passengers"] = f"Please replace {old.first_name} {old.last_name} with {who}."
        goal = {
            "kind": "change_passengers", "outcome": "do", "request": f"{old.first_name} {old.last_name} can't come; I'd like to put someone else on my {res_ref(r, known)} instead.",
            "confirm": confirm,
            "gold_proposal": f"On reservation {rid}, I will replace {old.first_name} {old.last_name} with {who}; the other passengers stay. Do you confirm that I should update the passengers (yes/no)?",
            "gold_reply": f"The passengers have been updated. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [
            read,
            Action(name="update_reservation_passengers", arguments={"reservation_id": rid, "passengers": passengers}),
        ]
        instruction = f"On reservation {rid}, you want {old.first_name} {old.last_name} replaced by {who}."
        family = "change_passenger"
    else:
        known["passengers"] = f"I want to add {who} to the reservation."
        goal = {
            "kind": "change_passenger_count", "outcome": "refuse", "request": f"I'd like to add one more passenger to my {res_ref(r, known)}.",
            "confirm": confirm,
            "gold_reply": f"I'm sorry, but the number of passengers on a reservation cannot be changed, so I cannot add {new['first_name']} to {rid}. {ANYTHING_ELSE}",
        }  # fmt: skip
        acts = lookups + [read]
        instruction = f"You want to add {who} as an extra passenger on reservation {rid}. If the agent says it is not possible, accept it."
        family = "passenger_count_refused"
    return Draft(family, uid, [GoalDraft(goal, acts, instruction)], known, unknown)


def fam_multi(ctx: Ctx, split: str) -> Draft | None:
    """Two requests on two reservations of one user: add bags to one, then cancel the other."""
    rng = ctx.rng
    reason = rng.choice(["change_of_plan", "health"])
    by_user: dict[str, list[Reservation]] = {}
    for u, r in ctx.reservations(split, lambda u, r: ctx.all_available(r)):
        by_user.setdefault(uid_of(u, ctx), []).append(r)
    pairs = [(uid, rs) for uid, rs in sorted(by_user.items()) if len(rs) >= 2]
    if not pairs:
        return None
    uid, rs = rng.choice(pairs)
    u = ctx.world.users[uid]
    a, b = rng.sample(rs, 2)
    bags = _bags_goal(ctx, u, a, [])
    if bags is None:
        return None
    ctx.used.update({a.reservation_id, b.reservation_id})
    cancel = cancel_goal(ctx, u, b, reason, [], insist=0)
    cancel.goal["request"] = f"Also, I need to cancel another reservation, {b.reservation_id}."
    known = {"user_id": f"My user id is {uid}.", "reservation_id": f"The reservations are {a.reservation_id} (bags) and {b.reservation_id} (to cancel).",
             "reason": REASON_WORDS[reason], "payment": f"Please use {bags.actions[-1].arguments['payment_id']}.", "bags": bags.goal["request"]}  # fmt: skip
    return Draft("bags_then_cancel", uid, [bags, cancel], known)
