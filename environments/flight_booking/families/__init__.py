"""The task families: each picks users / reservations that fit it and builds a `Draft` (tasks/drafts.py)
worded with tasks/wording.py; tasks/generator.py lists them with their counts and turns drafts into tasks.

* `booking`     — new reservations: one way, round trip, too many passengers (refused).
* `reservation` — changes to existing reservations: cancel, change flights, upgrade, bags, passengers.
* `service`     — disruptions, information, transfers: compensation, flight status, total paid, transfers.
"""
