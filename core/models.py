"""Platform rows in the public schema (core is a shared app)."""

from __future__ import annotations

from django.db import models


class BeatEntry(models.Model):
    """The last period of one beat schedule entry that a beat claimed (core.beat.LeaderScheduler).

    A period is sent only by the beat that moves `last_slot` forward, in a statement that also checks that its
    session holds the beat lock: two beats, a leader that lost its lock, or one restarted mid-period never send
    the same period twice. Written only by the scheduler's own connection (raw SQL); the model is its table.
    """

    name = models.CharField(max_length=200, primary_key=True)
    # Interval entries: the period's number, floor((epoch seconds - offset) / period). Other schedules (crontab):
    # the epoch second it was last sent.
    last_slot = models.BigIntegerField()
    claimed_at = models.DateTimeField()
    claimed_by = models.CharField(max_length=200)  # host and pid of the beat that sent it

    class Meta:
        db_table = "core_beat_entry"
