"""A landing of several raw tables resumes per table after a kill between its commits (real flights data)."""

from __future__ import annotations

import datetime as dt

import pytest

from fti.errors import FaultInjected

DAY = dt.date(2013, 1, 1)


def _counts(store):
    return {t: store.read(f"flights/{t}").count() if store.exists(f"flights/{t}") else 0
            for t in ("raw_planes", "raw_airports", "raw_flights", "raw_weather")}


def test_a_replay_stopped_between_its_tables_lands_the_rest_on_rerun(spark, store, settings, monkeypatch):
    """The first landing is planes then airports, each batch flights then weather. Stopped right after the
    planes commit, then right after a batch's flights commit (what a SIGKILL there leaves: the commit is done,
    nothing after it ran), each rerun lands exactly the missing table: it used to read "already landed" from
    raw_planes / raw_flights alone and leave airports and that batch's weather out for good."""
    from fti.authoring import Landing
    from fti.examples.flights.replay import _frames, landed_through, load

    landing = Landing(spark, store, settings)

    frames = _frames()
    want_weather = int((frames["weather"]["_date"] == DAY).sum())
    want_flights = int((frames["flights"]["_date"] == DAY).sum())
    monkeypatch.setenv("FTI_FAULT", "after_commit@flights/raw_planes:raise")
    with pytest.raises(FaultInjected):
        load(landing, through=DAY, batch="day")
    assert _counts(store) == {"raw_planes": len(frames["planes"]), "raw_airports": 0, "raw_flights": 0,
                              "raw_weather": 0}
    monkeypatch.setenv("FTI_FAULT", "after_commit@flights/raw_flights:raise")
    with pytest.raises(FaultInjected):
        load(landing, through=DAY, batch="day")
    assert _counts(store) == {"raw_planes": len(frames["planes"]), "raw_airports": len(frames["airports"]),
                              "raw_flights": want_flights, "raw_weather": 0}
    monkeypatch.delenv("FTI_FAULT")
    resumed = load(landing, through=DAY, batch="day")
    assert [(b.first_day, b.counts["flights"], b.counts["weather hours"]) for b in resumed] == [(DAY, 0, want_weather)]  # only the rest
    assert _counts(store) == {"raw_planes": len(frames["planes"]), "raw_airports": len(frames["airports"]),
                              "raw_flights": want_flights, "raw_weather": want_weather}
    assert landed_through(landing) == DAY
    assert load(landing, through=DAY, batch="day") == []  # now truly landed: nothing twice
    assert _counts(store)["raw_weather"] == want_weather
